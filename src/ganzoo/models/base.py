"""What every ganzoo GAN LightningModule shares (manual optimization, step counting, the noise stream), and the
base of the noise-to-image ones, which implements :class:`ganzoo.sampling.NoiseToImage`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.pytorch import LightningModule
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import nn

import ganzoo
from ganzoo.augment import Augmentation, build_augmentation
from ganzoo.checkpoint import ensure_model_class
from ganzoo.compat import current_batch_index
from ganzoo.distributed import process_share
from ganzoo.errors import ConfigError
from ganzoo.loop import writes_logs
from ganzoo.nets.sync_batchnorm import local_statistics
from ganzoo.sampling import (
    AUGMENTATION_STREAM,
    ClassIds,
    check_truncation,
    class_labels,
    draw_latents,
    iteration_seed,
    seeded,
    truncate,
)


class GANModule(LightningModule):
    """Base class of the GAN LightningModules.

    Step counting: ``trainer.global_step`` counts *generator* updates (BigGAN-PyTorch's "iterations"), so
    ``trainer.max_steps``, sample intervals and checkpoint intervals mean the same thing for every model,
    however many discriminator steps each iteration takes. Discriminator updates go through
    :meth:`discriminator_step`, which applies the optimizer through the strategy (precision plugin,
    gradient scaler) without advancing the counter.

    What a model offers users, callbacks, metrics and the CLIs depends on its kind (:mod:`ganzoo.sampling`):
    noise-to-image models derive from :class:`NoiseToImageGAN` (:class:`~ganzoo.sampling.NoiseToImage`,
    ``generate``), translation models implement :class:`~ganzoo.sampling.ImageToImage`
    (``translate(images, direction)``, :class:`~ganzoo.models.cyclegan.CycleGAN`). This class has neither.

    Speed switches every model takes (config keys ``model.channels_last`` and ``model.compile``):
    ``channels_last`` stores the networks' weights and the image batches in NHWC, which tensor cores prefer
    under mixed precision; ``compile`` runs each trained network through ``torch.compile`` (in place, so
    checkpoints keep their keys): ``true`` in torch's default mode, or a mode name: ``reduce-overhead`` (CUDA
    graphs: the kernels of a whole forward/backward launched at once, for small networks whose steps are
    shorter than their kernels' launch costs) or ``max-autotune``.

    Augmentation (config keys ``model.augment`` and ``model.augment_options``, :mod:`ganzoo.augment`): ``diffaug``
    or ``ada`` transform every image a discriminator sees, real and generated, in the D step and the G step alike.
    Models pass each D input through :meth:`augmented` and D's outputs on real images to :meth:`observe_real`
    (which ADA's controller reads); this class reseeds the augmentation's random stream every iteration,
    advances its controller, logs its values and keeps its state in checkpoints.

    Logging: a training step hands its values to :meth:`log_step_values`, which keeps them on the device
    every iteration and logs them through Lightning only at iterations whose values are written, so that no
    iteration in between waits for the device (see :mod:`ganzoo.loop`).
    """

    #: Logged step values shown under the progress bar (:class:`~ganzoo.callbacks.IterationProgressBar`).
    progress_bar_values: tuple[str, ...] = ()

    def __init__(
        self,
        channels_last: bool = False,
        compile: bool | str = False,
        augment: str | None = "none",
        augment_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.channels_last = channels_last
        self.compile_networks = compile_mode(compile)
        #: The differentiable augmentation of D's inputs, or None (``model.augment=none``).
        self.augmentation: Augmentation | None = build_augmentation(augment, augment_options)
        self._augmentation_state_to_load: dict[str, torch.Tensor] | None = None
        self._real_images = 0  # real images of this iteration over all processes (the augmentation's controller)
        #: This iteration's training values (detached scalars on the device, or floats), by logged name.
        self.step_values: dict[str, torch.Tensor | float] = {}
        # The resolved Hydra config of this model; written into checkpoints so that
        # ganzoo.checkpoint.load_model can rebuild the networks without the run's config files.
        self.model_config: dict[str, Any] | None = None
        # The whole resolved run config (data, metrics, ...), so that ganzoo.evaluate can repeat the run's
        # evaluation from the checkpoint alone.
        self.run_config: dict[str, Any] | None = None
        self._noise: torch.Generator | None = None
        self._noise_states_to_load: torch.Tensor | None = None
        self._parameter_lists: dict[int, tuple[nn.Module, list[nn.Parameter]]] = {}

    # ------------------------------------------------------------------------ speed and DDP
    def configure_model(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_networks:
            mode = None if self.compile_networks == "default" else self.compile_networks
            for net in self.children():
                if any(p.requires_grad for p in net.parameters()):
                    net.compile(mode=mode)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not self.channels_last:
            return batch
        return apply_to_collection(
            batch, torch.Tensor, lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
        )

    def check_data(self, datamodule: Any) -> None:
        """Raise a ConfigError when ``datamodule`` cannot train this model (pix2pix needs pairs); the training
        entry point calls it before anything else is built. Every model takes every DataModule here."""

    def split_over_processes(self, n: int, name: str) -> int:
        """This process's share of ``n``, a batch size of the whole run (``model.<name>``), under DDP."""
        world_size = self.trainer.world_size if self._trainer is not None else 1
        return process_share(n, world_size, f"model.{name}")

    # ------------------------------------------------------------------------ augmentation
    def augmented(self, images: torch.Tensor, image_channels: int | None = None) -> torch.Tensor:
        """``images`` (N, C, H, W) as the discriminator should see them: through the run's augmentation, if any.
        ``image_channels``: the channels of one image when each item stacks several (a conditional D's pair)."""
        return images if self.augmentation is None else self.augmentation(images, image_channels)

    def observe_real(self, logits: torch.Tensor) -> None:
        """Hand D's outputs on this iteration's (augmented) real images to the augmentation (ADA's r_t)."""
        if self.augmentation is not None:
            self.augmentation.observe_real(logits)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.augmentation is not None:
            # A seed of (run seed, iteration, process): a resumed run draws the transforms the uninterrupted one drew.
            seed = iteration_seed(torch.initial_seed(), self.global_step, self.global_rank, AUGMENTATION_STREAM)
            self.augmentation.reseed(seed, self.device)
            world_size = self.trainer.world_size if self._trainer is not None else 1
            self._real_images = len(batch[0]) * world_size

    # ----------------------------------------------------------------------------- logging
    def log_step_values(self, values: Mapping[str, torch.Tensor | float]) -> None:
        """Record this iteration's training values: 0-dim tensors (detached here) or Python floats, by name
        (``train/loss_g``, ...). Call once per training step, after the generator update: it also ends the
        iteration for the augmentation's controller (ADA), whose values join the logged ones.

        They stay on the device as :attr:`step_values` (the non-finite guard and the progress bar read them
        there) and go through Lightning's ``self.log`` only when this iteration's values are written
        (:func:`ganzoo.loop.writes_logs`): ``self.log`` costs a fraction of a millisecond of host time per
        value, and the loggers see only those iterations anyway.
        """
        if self.augmentation is not None:
            # Here, inside the training step: checkpoint callbacks save before the batch-end hooks run, and a
            # checkpoint must hold the controller as it is after this iteration.
            self.augmentation.end_iteration(self.global_step, self._real_images)
            values = {**values, **self.augmentation.logged_values()}
        self.step_values = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in values.items()}
        if self.values_written():
            self.log_dict(self.step_values)

    def values_written(self) -> bool:
        """Whether this iteration's logged values reach the loggers (see :func:`ganzoo.loop.writes_logs`), so that
        values only worth logging (diagnostics, not the losses the guard checks) are computed only then."""
        return self._trainer is not None and writes_logs(self.trainer, current_batch_index(self.trainer))

    # ----------------------------------------------------------------- optimization helpers
    def discriminator_step(self, optimizer: LightningOptimizer) -> None:
        """``optimizer.step()`` that does not advance ``global_step`` (see class docstring)."""
        self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None)

    @contextmanager
    def frozen(self, module: nn.Module) -> Iterator[None]:
        """Stop gradients into ``module``'s parameters inside the block (e.g. D during the G step).

        The activations still carry gradients through the module; only its weights get none, which
        saves the backward work for them.
        """
        params = self._parameters_of(module)
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad = False
        try:
            yield
        finally:
            for p, flag in zip(params, flags, strict=True):
                p.requires_grad = flag

    def _parameters_of(self, module: nn.Module) -> list[nn.Parameter]:
        # Walking a deep network's modules for its parameters costs more than toggling them (BigGAN's D has
        # over a hundred): once per network. Networks keep their Parameter objects (moving, loading and compiling
        # change their data, not them).
        cached = self._parameter_lists.get(id(module))
        if cached is None or cached[0] is not module:
            cached = self._parameter_lists[id(module)] = (module, list(module.parameters()))
        return cached[1]

    # ------------------------------------------------------------------------ noise stream
    def noise(self) -> torch.Generator:
        """The model's CPU random stream for training noise.

        Seeded from the process seed (``seed_everything``) plus the global rank, so every DDP rank draws
        different latents; its state travels in checkpoints, so a run resumed on another device type
        continues the same stream. Keeping it apart from the global RNG means data loading cannot shift
        the latents of a resumed run.
        """
        if self._noise is None:
            self._noise = torch.Generator()
            self._noise.manual_seed(torch.initial_seed() + self.global_rank)
        return self._noise

    # ------------------------------------------------------------------------- checkpoints
    @classmethod
    def class_path(cls) -> str:
        """``module.Class``, as recorded in checkpoints."""
        return f"{cls.__module__}.{cls.__qualname__}"

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Every rank runs this hook; gather each rank's noise state so that all of them resume exactly.
        state = self.noise().get_state()
        states = self.all_gather(state.to(self.device)).reshape(-1, state.numel()).cpu()  # NCCL needs GPU tensors
        checkpoint["ganzoo"] = {
            "version": ganzoo.__version__,
            "model_class": self.class_path(),
            "model_config": self.model_config,
            "run_config": self.run_config,
            "noise_states": states,
        }
        if self.augmentation is not None:  # collective: every rank saves
            checkpoint["ganzoo"]["augmentation"] = self.augmentation.extra_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before Lightning loads the weights, so a checkpoint of another model fails with one clear line.
        source = self._trainer.ckpt_path if self._trainer is not None else "being loaded"
        ensure_model_class(checkpoint, self.class_path(), source)
        step, max_steps = checkpoint.get("global_step", 0), self._trainer.max_steps if self._trainer else -1
        if 0 < max_steps <= step:
            raise ConfigError(
                f"checkpoint {source} is already at step {step} and trainer.max_steps={max_steps}, so nothing would "
                f"be trained: set trainer.max_steps above {step}"
            )
        self._noise_states_to_load = checkpoint.get("ganzoo", {}).get("noise_states")
        self._augmentation_state_to_load = checkpoint.get("ganzoo", {}).get("augmentation")

    def on_train_start(self) -> None:
        augmentation_state, self._augmentation_state_to_load = self._augmentation_state_to_load, None
        if augmentation_state is not None and self.augmentation is not None:
            self.augmentation.load_extra_state(augmentation_state, self.global_rank)
        states, self._noise_states_to_load = self._noise_states_to_load, None
        if states is not None and states.shape[0] == self.trainer.world_size:
            # clone(): Generator.set_state crashes on a view with a storage offset (torch 2.14).
            self.noise().set_state(states[self.global_rank].clone())
        elif states is not None:
            # A different number of processes: continue with fresh per-rank streams derived from the step.
            self.noise().manual_seed(torch.initial_seed() + 1_000_003 * self.global_step + self.global_rank)


class NoiseToImageGAN(GANModule):
    """A GAN whose generator maps latent noise (and, if class-conditional, class ids) to images: DCGAN, BigGAN.

    Implements :class:`ganzoo.sampling.NoiseToImage`, the API of users (``ganzoo.load``), callbacks, metrics and
    the CLIs: ``latent_dim``, ``num_classes`` (0: unconditional) and :meth:`generate`. Subclasses set
    ``latent_dim`` (and ``num_classes``) and implement :meth:`sampling_generator`; class-conditional ones also
    :meth:`forward_generator`; models with sampling settings name them in :attr:`sampling_settings` and read them
    in :meth:`sampling_mode`.
    """

    latent_dim: int = 0
    num_classes: int = 0
    #: Sampling settings :meth:`generate` takes as keyword arguments, named as the model's config keys (hparams);
    #: a setting not given, or None, keeps the model's own value.
    sampling_settings: tuple[str, ...] = ()

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        """Draw ``n`` latent vectors (n, latent_dim) ~ N(0, I), returned on the model's device.

        Without ``generator`` the draw comes from the model's own noise stream (see :meth:`noise`), so
        it is reproducible and resumes exactly from a checkpoint. Draws happen on the CPU, so the same
        seed gives the same latents on any device (the copy of a latent batch costs next to nothing).
        ``truncation`` > 0 applies the truncation trick: entries outside [-truncation, truncation] are redrawn.
        """
        generator = generator if generator is not None else self.noise()
        return to_device(draw_latents(n, self.latent_dim, generator, truncation), self.device)

    def class_labels(
        self, n: int, classes: ClassIds | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """The class ids (n,) int64 on the CPU that :meth:`generate` uses, or None for an unconditional model:
        :func:`ganzoo.sampling.class_labels`, drawn from the model's noise stream unless ``generator`` is given."""
        if generator is None and self.num_classes:  # an unconditional model draws nothing
            generator = self.noise()
        return class_labels(self.num_classes, n, classes, generator)

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` class ids drawn uniformly, on the model's device (from the noise stream by default)."""
        return to_device(self.class_labels(n, None, generator), self.device)

    def resolve_sampling_settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every name of :attr:`sampling_settings` with its value for one :meth:`generate` call: the given one,
        else the model's (``hparams``). A ConfigError names a given setting this model does not have."""
        for name, value in given.items():
            if value is not None and name not in self.sampling_settings:
                raise ConfigError(f"{name}={value} does not apply to a {type(self).__name__}: remove {name}=")
        return {name: self.hparams[name] if given.get(name) is None else given[name] for name in self.sampling_settings}

    @torch.no_grad()
    def generate(
        self,
        n: int | None = None,
        classes: ClassIds | None = None,
        truncation: float | None = None,
        seed: int | None = None,
        *,
        z: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        """Generate ``n`` images: float32 (n, C, H, W) in [-1, 1], on the model's device.

        Args:
            n: number of images.
            classes: class ids for a class-conditional model (one id or a list / 1-D tensor, repeated in order up
                to ``n``); None draws them uniformly. A ConfigError for an unconditional model or an unknown id.
            truncation: the truncation trick, a threshold > 0 such as 0.5 (latent entries outside
                [-truncation, truncation] are redrawn); None for untruncated N(0, I) latents.
            seed: makes the images reproducible: the labels (when drawn) and then the latents come from
                ``torch.Generator().manual_seed(seed)`` on the CPU, so a seed gives the same latents on every
                device (:func:`ganzoo.sampling.seeded_inputs`). None draws from the model's own noise stream
                (different images at every call).
            z: (keyword only) latents (N, latent_dim) to use instead of drawing ``n``; with ``truncation``
                their entries outside the threshold are redrawn from a fixed seed (same ``z``, same images).
            labels: (keyword only) class ids (N,) int64, or (N, num_classes) float class mixtures for models
                that interpolate between classes (BigGAN), instead of ``classes``.
            settings: (keyword only) the model's :attr:`sampling_settings` for this call (BigGAN's
                ``G_eval_mode``, ``standing_stats``, ``standing_batch_size``); not given or None: the model's own.

        Networks run as :meth:`sampling_mode` says (eval mode unless the model's settings sample with batch
        statistics); the module's train/eval mode is restored afterwards.
        """
        truncation = check_truncation(truncation)
        resolved = self.resolve_sampling_settings(settings)
        if classes is not None and labels is not None:
            raise ConfigError("generate() takes classes= or labels=, not both")
        if z is None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ConfigError(f"n={n!r} must be a positive number of images, e.g. generate(16)")
        elif n is not None and n != len(z):
            raise ConfigError(f"generate(n={n}) was given {len(z)} latents z: pass one of n and z")
        else:
            n = len(z)
        generator = seeded(seed) if seed is not None else None
        if labels is None:
            # Labels before latents, as ganzoo.sampling.seeded_inputs draws them, so a seed gives the same images.
            labels = self.class_labels(n, classes, generator)
        if z is None:
            z = self.sample_latent(n, generator=generator, truncation=truncation)
        elif truncation is not None:
            z = truncate(z, truncation, seeded(0))
        z = _to_model_device(z, self.device)
        if labels is not None:
            labels = _to_model_device(labels, self.device)
        net = self.sampling_generator()
        was_training = net.training
        try:
            # Sampling may run on one process alone (sample grids), so batch norms must not wait for the others.
            with local_statistics(net), self.sampling_mode(net, resolved) as sampler:
                return self.forward_generator(sampler, z, labels).float().clamp_(-1.0, 1.0)
        finally:
            net.train(was_training)

    @contextmanager
    def sampling_mode(self, net: nn.Module, settings: Mapping[str, Any]) -> Iterator[nn.Module]:
        """Put ``net`` in the mode it samples in, given the resolved ``settings`` (see
        :meth:`resolve_sampling_settings`), and yield the network to run: here ``net`` in eval mode, so an image
        depends only on its own latent."""
        net.eval()
        yield net

    def sampling_generator(self) -> nn.Module:
        """The generator used for sampling (an EMA copy where the model keeps one)."""
        raise NotImplementedError

    def forward_generator(self, net: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Run ``net`` on latents ``z``; class-conditional models override this to pass ``labels``."""
        return net(z)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the CPU) copied to ``device`` without making the host wait: to a GPU through pinned
    memory, so that the copy queues behind the running kernels instead of waiting for them."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _to_model_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``: from the CPU through :func:`to_device` (callers hand CPU latents batch by batch)."""
    return to_device(tensor, device) if tensor.device.type == "cpu" else tensor.to(device)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(compile: bool | str | None) -> str | None:
    """``model.compile`` as a ``torch.compile`` mode name, or None for no compilation; a ConfigError otherwise."""
    if compile is None or compile is False:
        return None
    if compile is True:
        return "default"
    if isinstance(compile, str) and compile in COMPILE_MODES:
        return compile
    raise ConfigError(
        f"model.compile={compile!r} is not a torch.compile setting: use true, false or a mode "
        f"({', '.join(COMPILE_MODES)}), e.g. model.compile=reduce-overhead"
    )
