"""A stand-in for the Inception weights file, for tests on a machine that cannot download the real one."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch


def write_random_inception_weights(path: Path) -> Path:
    """Save a randomly (He-) initialised state dict in the layout of torchmetrics' ``NoTrainInceptionV3``.

    The network's constructor always loads weights; while building the fixture it is handed an empty state dict
    and told not to load it, so the freshly initialised parameters are what gets saved. Nothing is patched when
    the tests then load the file.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity

    with (
        mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}),
        mock.patch.object(fidelity.FeatureExtractorInceptionV3, "load_state_dict"),
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(0)
        net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        # He initialisation keeps the activations alive through the ~100 layers, so features differ by image.
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path
