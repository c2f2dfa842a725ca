"""Best-effort dataset downloads that fail fast when there is no network."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds a download may wait on one socket operation before giving up.
DOWNLOAD_TIMEOUT_S = 10.0


def try_download(fetch: Callable[[], object], what: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bool:
    """Call ``fetch()`` (e.g. a torchvision dataset with ``download=True``); True when it succeeded.

    Without a default socket timeout an unreachable mirror can stall urllib for
    minutes, so one is set for the duration of the call and then restored. Any
    failure (no network, mirror down, bad checksum) is logged and reported as False;
    the caller then raises a DataError that lists the offline remedies.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        fetch()
        return True
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError, ...
        log.warning("could not download %s: %s", what, e)
        return False
    finally:
        socket.setdefaulttimeout(previous)
