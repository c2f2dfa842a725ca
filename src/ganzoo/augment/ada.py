"""ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"): a pipeline of
differentiable geometric and colour transforms, each applied with probability p, and p tuned during training from
how sure the discriminator is about the real images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ganzoo.augment.base import Augmentation
from ganzoo.distributed import all_reduce
from ganzoo.errors import ConfigError

#: The pipelines: ``bgc`` (the paper's default) = blit + geometric + colour.
PIPELINES = {
    "b": ("blit",),
    "bg": ("blit", "geometric"),
    "bgc": ("blit", "geometric", "color"),
    "c": ("color",),
}

# The paper's strengths: log2 std of the scalings, std of the fractional translation, brightness std.
SCALE_STD = 0.2
TRANSLATE_STD = 0.125
INTEGER_TRANSLATE = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
SATURATION_STD = 1.0

#: The luma axis of RGB colour space, in homogeneous coordinates: hue rotates about it, luma flips along it.
_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)


def _eye(n: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.eye(size, device=device).expand(n, size, size).clone()


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) scalings of the plane."""
    m = _eye(len(sx), 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def rotate2d(angle: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotations of the plane by ``angle`` radians."""
    m = _eye(len(angle), 3, angle.device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) translations of the plane (in the [-1, 1] image coordinates of ``affine_grid``)."""
    m = _eye(len(tx), 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _color_scale(s: torch.Tensor) -> torch.Tensor:
    m = _eye(len(s), 4, s.device)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


def _color_translate(t: torch.Tensor) -> torch.Tensor:
    m = _eye(len(t), 4, t.device)
    m[:, 0, 3] = m[:, 1, 3] = m[:, 2, 3] = t
    return m


def _luma_rotation(angle: torch.Tensor) -> torch.Tensor:
    """(N, 4, 4) rotations of RGB about the luma axis (Rodrigues' formula)."""
    n, device = len(angle), angle.device
    axis = _LUMA[:3].to(device)
    cross = torch.zeros(3, 3, device=device)
    cross[0, 1], cross[0, 2], cross[1, 0], cross[1, 2], cross[2, 0], cross[2, 1] = (
        -axis[2], axis[1], axis[2], -axis[0], -axis[1], axis[0],
    )  # fmt: skip
    outer = torch.outer(axis, axis)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    m = _eye(n, 4, device)
    m[:, :3, :3] = cos * torch.eye(3, device=device) + sin * cross + (1 - cos) * outer
    return m


class AdaptiveAugment(Augmentation):
    """ADA's ``bgc`` pipeline (or another of :data:`PIPELINES`) at probability ``p``, and its controller.

    Each op of the pipeline is applied to each image with probability ``p`` (the rotations with
    ``1 - sqrt(1 - p)`` each, as the paper has it, so that one of the two happens with probability p):

    - blit: horizontal flip, rotation by a multiple of 90 degrees, integer translation (up to 1/8 of the side);
    - geometric: isotropic scaling (log2-normal, std 0.2), arbitrary rotation, anisotropic scaling, fractional
      translation (normal, std 1/8 of the side); with the blit ops composed into one affine map per image and
      sampled once, bilinearly, with reflection at the borders;
    - color: brightness (+ normal, std 0.2), contrast (x log2-normal, std 0.5), luma flip, hue rotation (uniform
      angle), saturation (x log2-normal, std 1), as one 4 x 4 matrix per image on RGB (grey images are treated as
      equal R, G and B).

    The controller (``target`` not None) measures r_t = E[sign(D(real))] over ``interval`` iterations (summed
    over every D output on augmented real images, in all processes: exact integer sums, so every process and a
    resumed run compute the same value) and then moves p by ``sign(r_t - target) * images / (kimg * 1000)``,
    where ``images`` is the number of real images of those iterations, so that p can go from 0 to 1 in ``kimg``
    thousand images, clamped to [0, 1]. ``target`` None keeps p fixed at ``p`` (the paper's fixed-p runs).

    Differences from the reference: the geometric transforms are sampled bilinearly without its 2x-upsampled,
    low-pass-filtered resampling (wavelet filter), and its noise, cutout and image-space filtering ops (not in
    ``bgc``) are not offered.

    Args:
        pipeline: ``bgc`` (default), ``bg``, ``b`` or ``c``.
        target: the r_t that p steers to (0.6 in the paper); None for a fixed p.
        interval: iterations between adjustments (4).
        kimg: thousands of real images for p to go from 0 to 1 (500).
        p: the initial probability.
    """

    def __init__(
        self,
        pipeline: str = "bgc",
        target: float | None = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        p: float = 0.0,
    ) -> None:
        super().__init__()
        if pipeline not in PIPELINES:
            raise ConfigError(f"model.augment_options.pipeline={pipeline!r} is not one of {list(PIPELINES)}: e.g. bgc")
        if target is not None and not 0.0 <= target <= 1.0:
            raise ConfigError(
                f"model.augment_options.target={target!r} must lie in [0, 1] (or be null for a fixed p): e.g. 0.6"
            )
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ConfigError(f"model.augment_options.interval={interval!r} must be a positive integer: e.g. 4")
        if not kimg > 0:
            raise ConfigError(f"model.augment_options.kimg={kimg!r} must be positive: e.g. 500")
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"model.augment_options.p={p!r} must lie in [0, 1]: e.g. 0")
        self.ops = PIPELINES[pipeline]
        self.target = target
        self.interval = interval
        self.kimg = kimg
        #: The augmentation probability: a buffer, so it is in checkpoints and moves with the model.
        self.register_buffer("p", torch.tensor(float(p)))
        # Not buffers: DDP would overwrite every process's sums with process 0's before each step. Sum of the
        # signs (+1, 0, -1) of D's real outputs since the last adjustment and their number, as exact integers.
        self._sign_sum: torch.Tensor | None = None
        self._sign_count: torch.Tensor | None = None
        self._rt: torch.Tensor | None = None
        self._images = 0

    # ------------------------------------------------------------------------------ the pipeline
    def forward(self, images: torch.Tensor, image_channels: int | None = None) -> torch.Tensor:
        n = images.shape[0]
        p = self.p.to(images.device)
        if "blit" in self.ops or "geometric" in self.ops:
            images = self._warp(images, self._geometry(n, p, images.shape[-2:], images.device))
        if "color" in self.ops:
            images = self._recolor(images, self._color(n, p, images.device), image_channels)
        return images

    def _chosen(self, n: int, p: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(n,) float 1 where the op applies (probability ``p``), else 0."""
        return (self.uniform(n, device) < p).float()

    def _geometry(self, n: int, p: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """(n, 3, 3): the map from output to input coordinates of each image (the inverse of the augmentation)."""
        inverse = _eye(n, 3, device)
        # Each op's inverse, composed in reverse order of application: input = A1^-1 ... An^-1 output.
        if "blit" in self.ops:
            flip = 1 - 2 * torch.floor(self.uniform(n, device) * 2) * self._chosen(n, p, device)
            inverse = inverse @ scale2d(flip, torch.ones_like(flip))
            quarter = torch.floor(self.uniform(n, device) * 4) * self._chosen(n, p, device)
            inverse = inverse @ rotate2d(-quarter * math.pi / 2)
            # Whole pixels: a shift of k pixels is 2k / side in [-1, 1] coordinates.
            height, width = size
            shift_x = torch.round((self.uniform(n, device) * 2 - 1) * INTEGER_TRANSLATE * width)
            shift_y = torch.round((self.uniform(n, device) * 2 - 1) * INTEGER_TRANSLATE * height)
            chosen = self._chosen(n, p, device)
            inverse = inverse @ translate2d(-2 * shift_x * chosen / width, -2 * shift_y * chosen / height)
        if "geometric" in self.ops:
            scale = torch.exp2(self.normal(n, device) * SCALE_STD * self._chosen(n, p, device))
            inverse = inverse @ scale2d(1 / scale, 1 / scale)
            p_rotation = 1 - torch.sqrt((1 - p).clamp(min=0))
            angle = (self.uniform(n, device) * 2 - 1) * math.pi * self._chosen(n, p_rotation, device)
            inverse = inverse @ rotate2d(-angle)
            aniso = torch.exp2(self.normal(n, device) * SCALE_STD * self._chosen(n, p, device))
            inverse = inverse @ scale2d(1 / aniso, aniso)
            angle = (self.uniform(n, device) * 2 - 1) * math.pi * self._chosen(n, p_rotation, device)
            inverse = inverse @ rotate2d(-angle)
            tx = self.normal(n, device) * TRANSLATE_STD * self._chosen(n, p, device)
            ty = self.normal(n, device) * TRANSLATE_STD * self._chosen(n, p, device)
            inverse = inverse @ translate2d(-2 * tx, -2 * ty)
        return inverse

    def _warp(self, images: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        n, c, height, width = images.shape
        grid = F.affine_grid(inverse[:, :2, :].to(images.dtype), [n, c, height, width], align_corners=False)
        warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # Images no op moved stay exactly as they were (resampling at the pixel centres would round them).
        unmoved = (inverse == torch.eye(3, device=inverse.device)).flatten(1).all(dim=1)
        return torch.where(unmoved.view(n, 1, 1, 1), images, warped)

    def _color(self, n: int, p: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(n, 4, 4) colour transforms of homogeneous RGB, applied as ``matrix @ (r, g, b, 1)``."""
        matrix = _eye(n, 4, device)
        brightness = self.normal(n, device) * BRIGHTNESS_STD * self._chosen(n, p, device)
        matrix = _color_translate(brightness) @ matrix
        contrast = torch.exp2(self.normal(n, device) * CONTRAST_STD * self._chosen(n, p, device))
        matrix = _color_scale(contrast) @ matrix
        luma = _LUMA.to(device)
        luma_outer = torch.outer(luma, luma)
        flip = torch.floor(self.uniform(n, device) * 2) * self._chosen(n, p, device)
        matrix = (torch.eye(4, device=device) - 2 * luma_outer * flip.view(n, 1, 1)) @ matrix
        hue = (self.uniform(n, device) * 2 - 1) * math.pi * self._chosen(n, p, device)
        matrix = _luma_rotation(hue) @ matrix
        saturation = torch.exp2(self.normal(n, device) * SATURATION_STD * self._chosen(n, p, device))
        matrix = (luma_outer + (torch.eye(4, device=device) - luma_outer) * saturation.view(n, 1, 1)) @ matrix
        return matrix

    @staticmethod
    def _recolor(images: torch.Tensor, matrix: torch.Tensor, image_channels: int | None) -> torch.Tensor:
        n, channels, height, width = images.shape
        c = channels if image_channels is None else image_channels
        x = images.reshape(n, channels // c, c, height * width)
        linear, offset = matrix[:, :3, :3].to(images.dtype), matrix[:, :3, 3].to(images.dtype)
        if c == 3:
            x = torch.einsum("nij,ngjp->ngip", linear, x) + offset.view(n, 1, 3, 1)
        elif c == 1:
            # A grey value g is the RGB colour (g, g, g); the result is read back as the mean of its channels.
            x = x * linear.sum(dim=2).mean(dim=1).view(n, 1, 1, 1) + offset.mean(dim=1).view(n, 1, 1, 1)
        else:
            raise ValueError(f"colour augmentation needs 1 or 3 channels per image, got {c}")
        return x.reshape(images.shape)

    # ------------------------------------------------------------------------------ the controller
    def observe_real(self, logits: torch.Tensor) -> None:
        if self.target is None:
            return
        signs = torch.sign(logits.detach()).to(torch.int64)
        if self._sign_sum is None or self._sign_sum.device != signs.device:
            self._sign_sum = torch.zeros((), dtype=torch.int64, device=signs.device)
            self._sign_count = torch.zeros((), dtype=torch.int64, device=signs.device)
        self._sign_sum += signs.sum()
        self._sign_count += signs.numel()

    def end_iteration(self, iteration: int, real_images: int) -> None:
        if self.target is None:
            return
        self._images += real_images
        if iteration % self.interval or self._sign_sum is None:
            return
        assert self._sign_count is not None
        # One collective for both sums; NCCL needs them on the process's GPU, where they already are.
        sums = all_reduce(torch.stack([self._sign_sum, self._sign_count]))
        rt = sums[0].double() / sums[1].clamp(min=1).double()
        step = torch.sign(rt - self.target) * self._images / (self.kimg * 1000)
        self.p.copy_((self.p.double() + step).clamp(0.0, 1.0))
        self._rt = rt.float()
        self._sign_sum.zero_()
        self._sign_count.zero_()
        self._images = 0

    def logged_values(self) -> dict[str, torch.Tensor]:
        values = {"train/ada_p": self.p}
        if self._rt is not None:
            values["train/ada_rt"] = self._rt
        return values

    def extra_state(self) -> dict[str, torch.Tensor]:
        # The sums since the last adjustment, over all processes (integers: the order of the additions cannot
        # change them); on resume process 0 holds them and the others start from zero, which sums the same.
        device = self.p.device
        sign_sum = self._sign_sum if self._sign_sum is not None else torch.zeros((), dtype=torch.int64, device=device)
        count = self._sign_count if self._sign_count is not None else torch.zeros((), dtype=torch.int64, device=device)
        sums = all_reduce(torch.stack([sign_sum, count]).to(device)).cpu()
        state = {"sign_sum": sums[0], "sign_count": sums[1], "images": torch.tensor(self._images)}
        if self._rt is not None:
            state["rt"] = self._rt.detach().cpu()
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor], rank: int) -> None:
        device = self.p.device
        mine = rank == 0
        self._sign_sum = (state["sign_sum"] if mine else torch.zeros((), dtype=torch.int64)).to(device)
        self._sign_count = (state["sign_count"] if mine else torch.zeros((), dtype=torch.int64)).to(device)
        self._images = int(state["images"])
        self._rt = state["rt"].to(device) if "rt" in state else None
