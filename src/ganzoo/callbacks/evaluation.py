"""Periodic evaluation (FID, KID, IS, class statistics, precision/recall/density/coverage) during training, logged
and ready for checkpointing."""

from __future__ import annotations

import logging
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from ganzoo.errors import ConfigError
from ganzoo.metrics.evaluation import Evaluation

log = logging.getLogger("ganzoo.metrics")


class EvaluationCallback(Callback):
    """Runs an :class:`~ganzoo.metrics.Evaluation` every ``every_n_steps`` generator updates, at the end of
    training and, with ``at_start``, before the first step.

    The values go to every logger at the current step and into ``trainer.callback_metrics``, where
    ``ModelCheckpoint(monitor=...)`` finds them (the best-checkpoint callback saves at the same steps).
    Every DDP process evaluates its share of the images; the metrics gather their states across processes.
    Once the evaluation is set up, its :meth:`~ganzoo.metrics.Evaluation.protocol` joins every logger's
    hyperparameters as ``evaluation_protocol`` (CSV: ``hparams.yaml``; W&B: the run's config).

    Args:
        evaluation: what to compute.
        every_n_steps: interval in generator updates; 0 evaluates only at the start and the end.
        at_start: evaluate the untrained model too (step 0), the baseline of the curves.
        monitor: the key that decides the best checkpoint, e.g. ``val/fid_fmnist``; checked against the keys
            this evaluation produces.
        mode: ``min`` when lower values of ``monitor`` are better (FID, KID), ``max`` otherwise (IS).
    """

    def __init__(
        self,
        evaluation: Evaluation,
        every_n_steps: int = 500,
        at_start: bool = True,
        monitor: str | None = None,
        mode: str = "min",
    ) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"metrics.mode={mode!r}: use min (FID, KID) or max (IS)")
        self.evaluation = evaluation
        self.every_n_steps = every_n_steps
        self.at_start = at_start
        self.monitor = monitor
        self.mode = mode
        # Checked here, when the config is built, rather than after the evaluator and real statistics are ready.
        if monitor is not None and monitor not in evaluation.output_keys():
            raise ConfigError(
                f"metrics.monitor={monitor} is not computed by this evaluation: pick one of {evaluation.output_keys()}"
            )
        #: (step, metrics) of every evaluation of this run, resumed runs included.
        self.history: list[tuple[int, dict[str, float]]] = []
        self._last_step = -1

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.datamodule is None:
            raise ConfigError("evaluation needs the run's DataModule for real images: pass datamodule= to fit")
        self.evaluation.setup(trainer.datamodule, pl_module.device)
        if trainer.is_global_zero:
            # Beside the run's config: the extractor's weights, counts and settings behind every logged number.
            protocol = self.evaluation.protocol(pl_module)
            for logger in trainer.loggers:
                logger.log_hyperparams({"evaluation_protocol": protocol})
        accuracy = getattr(self.evaluation.extractor, "accuracy", None)
        if accuracy is not None:
            self._publish(trainer, {f"evaluator/accuracy_{self.evaluation.name}": accuracy}, trainer.global_step)
        if self.at_start and trainer.global_step == 0:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        due = self.every_n_steps > 0 and step % self.every_n_steps == 0
        if due or 0 < trainer.max_steps <= step:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._evaluate(trainer, pl_module)

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        values = self.evaluation.evaluate(pl_module)
        self.history.append((step, values))
        self._publish(trainer, values, step)
        if trainer.is_global_zero:
            log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    @staticmethod
    def _publish(trainer: Trainer, values: dict[str, float], step: int) -> None:
        # Straight to the loggers at this step: self.log() would hold the values back until
        # log_every_n_steps, and cannot be called from on_train_end.
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})

    def best(self) -> tuple[int, float] | None:
        """(step, value) of the best ``monitor`` value so far (see ``mode``); None without a monitor or evaluations.

        The untrained model (step 0) is a baseline, not a candidate: no checkpoint exists for it.
        """
        scores = [(step, values[self.monitor]) for step, values in self.history if self.monitor in values and step > 0]
        if not scores:
            return None
        pick = min if self.mode == "min" else max
        return pick(scores, key=lambda item: item[1])

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
