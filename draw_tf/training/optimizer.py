"""The optimizer of a run: Adam with a warm-up and decay schedule and global-norm clipping."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="draw_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to ``peak``, then constant, cosine or exponential decay.

  Decay runs from the end of warm-up to ``total_steps``, ending at
  ``peak * final_fraction``. With ``progress`` (a scalar variable in [0, 1],
  the fraction of a time budget spent: :class:`~draw_tf.training.callbacks.BudgetClock`) the decay follows
  it instead of the step, so a run with ``train.budget_minutes`` ends its
  decay when its minutes end; the warm-up still counts steps.
  """

  def __init__(self, peak, total_steps, warmup_steps=0, kind="constant", final_fraction=0.1,
               progress=None):
    self.peak = float(peak)
    self.total_steps = int(total_steps)
    self.warmup_steps = int(warmup_steps)
    self.kind = kind
    self.final_fraction = float(final_fraction)
    self.progress = progress

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = float(max(self.warmup_steps, 0))
    if self.progress is not None:
      progress = tf.clip_by_value(tf.cast(self.progress, tf.float32), 0.0, 1.0)
    else:
      progress = tf.clip_by_value(
          (step - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
    if self.kind == "cosine":
      factor = self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + tf.cos(math.pi * progress))
    elif self.kind == "exponential":
      factor = tf.pow(self.final_fraction, progress)
    else:
      factor = tf.constant(1.0)
    if warmup > 0:
      factor = tf.where(step < warmup, (step + 1) / warmup, factor)
    return self.peak * factor

  def get_config(self):
    # ``progress`` is run state (it lives in the checkpoint), not configuration.
    return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "kind": self.kind, "final_fraction": self.final_fraction}


def make_optimizer(train_config, total_steps: int, progress=None) -> keras.optimizers.Optimizer:
  """Adam with the config's learning-rate schedule and global-norm clipping.

  ``progress``: the budget fraction variable of :class:`~draw_tf.training.callbacks.BudgetClock` when the
  run has ``train.budget_minutes`` (the decay then follows minutes, not steps).
  """
  schedule = WarmupDecay(train_config.learning_rate, total_steps, train_config.warmup_steps,
                         train_config.lr_schedule, train_config.final_lr_fraction, progress)
  return keras.optimizers.Adam(
      learning_rate=schedule, beta_1=train_config.adam_beta1, beta_2=train_config.adam_beta2,
      global_clipnorm=train_config.grad_clip_norm or None)
