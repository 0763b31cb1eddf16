"""Training schedule of the tagger (arXiv:1912.12238): learning rate, lambda and the two phases.

- learning rate ``alpha_n = alpha0 / (1 + kappa n)`` (n = epoch from 0; alpha0 0.01, kappa 0.1);
- phase 1 (the first ``class_only_epochs`` epochs): class branch only, the domain loss weight
  and the gradient-reversal lambda are 0;
- phase 2: class + domain, domain loss weight 1 and
  ``lambda_m = lambda0 [2 / (1 + exp(-gamma m)) - 1]`` with m the epoch counted from the start
  of phase 2 (lambda0 30, gamma 0.2: lambda reaches 0.9 lambda0 after ~15 epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def learning_rate(epoch: int, *, alpha0: float, kappa: float) -> float:
    """``alpha0 / (1 + kappa * epoch)``."""
    return alpha0 / (1.0 + kappa * epoch)


def grl_lambda(epoch: int, *, lambda0: float, gamma: float = 0.2) -> float:
    """``lambda0 * (2 / (1 + exp(-gamma * epoch)) - 1)`` (0 at epoch 0, -> lambda0)."""
    return lambda0 * (2.0 / (1.0 + math.exp(-gamma * epoch)) - 1.0)


@dataclass(frozen=True)
class Schedule:
    """The per-epoch values of a training run.

    Attributes
    ----------
    alpha0, kappa : float
        Learning-rate schedule.
    lambda0, gamma : float
        Gradient-reversal schedule of phase 2.
    class_only_epochs : int
        Length of phase 1.
    domain_adaptation : bool
        False: every epoch is phase 1 (``--no-da``).
    """

    alpha0: float
    kappa: float
    lambda0: float
    gamma: float
    class_only_epochs: int
    domain_adaptation: bool = True

    def phase(self, epoch: int) -> int:
        """1 (class only) or 2 (class + domain)."""
        return 2 if self.domain_adaptation and epoch >= self.class_only_epochs else 1

    def values(self, epoch: int) -> dict[str, float]:
        """``learning_rate``, ``grl_lambda``, ``domain_weight`` and ``phase`` of ``epoch``."""
        phase = self.phase(epoch)
        lam = (grl_lambda(epoch - self.class_only_epochs, lambda0=self.lambda0, gamma=self.gamma)
               if phase == 2 else 0.0)
        return {"learning_rate": learning_rate(epoch, alpha0=self.alpha0, kappa=self.kappa),
                "grl_lambda": lam, "domain_weight": 1.0 if phase == 2 else 0.0,
                "phase": phase}


def schedule_callback(schedule: Schedule, *, optimizer, grl, domain_weight):
    """A Keras callback setting, at the start of every epoch, the optimizer's learning rate,
    the gradient-reversal layer's ``lam`` and the ``domain_weight`` variable; the values are
    added to the epoch logs (TensorBoard)."""
    from tensorflow import keras

    class ScheduleCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.current = schedule.values(epoch)
            optimizer.learning_rate.assign(self.current["learning_rate"])
            grl.lam.assign(self.current["grl_lambda"])
            domain_weight.assign(self.current["domain_weight"])

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs.update({k: float(v) for k, v in self.current.items()})

    return ScheduleCallback()
