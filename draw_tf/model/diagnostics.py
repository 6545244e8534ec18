"""Latent-usage diagnostics: active units and KL per step, and the collapse warning.

A DRAW whose posterior has collapsed (``q(z_t | x) = p(z_t)`` for every step)
still trains to a finite bound, but its latents carry nothing about the image:
every sample is the same mean image. Two numbers show it:

- the KL term ``L_z`` (eq. 11), close to 0 nats;
- the number of **active units** (Burda et al. 2015, section 5.2): unit ``u``
  of step ``t`` is active when ``Cov_x(E_q[z_{t,u} | x]) > 0.01``, the variance
  over the evaluated images of its posterior mean.

:class:`LatentUsage` accumulates both over an evaluation (a Keras metric, so it
sums across replicas like the others); :func:`collapse_message` turns a test
KL into the one warning the training log prints.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

# Burda et al.'s threshold on the variance of a unit's posterior mean.
ACTIVE_UNIT_THRESHOLD = 0.01
# Below this test KL (nats per image) the latents are reported as unused.
COLLAPSE_KL_NATS = 1.0


def active_units(sum_mu: np.ndarray, sum_mu2: np.ndarray, count: float,
                 threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
  """Which units are active, from running sums over ``count`` images.

  Args:
    sum_mu: ``[T, latent_dim]`` sum over images of the posterior means.
    sum_mu2: ``[T, latent_dim]`` sum of their squares.
    count: number of images.
    threshold: variance above which a unit counts as active.

  Returns:
    ``[T, latent_dim]`` booleans: ``Var_x(mu_{t,u}) > threshold``.
  """
  count = max(float(count), 1.0)
  mean = np.asarray(sum_mu, np.float64) / count
  variance = np.asarray(sum_mu2, np.float64) / count - mean**2
  return variance > threshold


@keras.saving.register_keras_serializable(package="draw_tf")
class LatentUsage(keras.metrics.Metric):
  """Active units and KL per step over an evaluation.

  ``update_state(mu, kl_steps)`` with posterior means ``mu`` ``[batch, T,
  latent_dim]`` and per-example, per-step KL ``kl_steps`` ``[batch, T]``;
  ``result()`` is the number of active units (a scalar, for Keras logs).
  :meth:`summary` gives the per-step detail after an evaluation.

  The sums are float32; the variance ``E[mu^2] - E[mu]^2`` loses about
  ``1e-7 * E[mu^2]`` to cancellation, far below the 0.01 threshold for means
  of order 1.
  """

  def __init__(self, num_steps: int, latent_dim: int, name: str = "active_units", **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_steps = int(num_steps)
    self.latent_dim = int(latent_dim)
    shape = (self.num_steps, self.latent_dim)
    self.sum_mu = self.add_variable(shape=shape, initializer="zeros", name="sum_mu")
    self.sum_mu2 = self.add_variable(shape=shape, initializer="zeros", name="sum_mu2")
    self.kl_sum = self.add_variable(shape=(self.num_steps,), initializer="zeros", name="kl_sum")
    self.count = self.add_variable(shape=(), initializer="zeros", name="count")

  def update_state(self, mu, kl_steps):
    mu = tf.cast(mu, tf.float32)
    self.sum_mu.assign_add(tf.reduce_sum(mu, axis=0))
    self.sum_mu2.assign_add(tf.reduce_sum(tf.square(mu), axis=0))
    self.kl_sum.assign_add(tf.reduce_sum(tf.cast(kl_steps, tf.float32), axis=0))
    self.count.assign_add(tf.cast(tf.shape(mu)[0], tf.float32))

  def result(self):
    count = tf.maximum(self.count, 1.0)
    mean = self.sum_mu / count
    variance = self.sum_mu2 / count - tf.square(mean)
    return tf.reduce_sum(tf.cast(variance > ACTIVE_UNIT_THRESHOLD, tf.float32))

  def summary(self) -> dict:
    """``active_units`` (total), ``active_units_per_step`` ``[T]`` and ``kl_per_step`` ``[T]`` (nats)."""
    count = float(keras.ops.convert_to_numpy(self.count))
    active = active_units(keras.ops.convert_to_numpy(self.sum_mu),
                          keras.ops.convert_to_numpy(self.sum_mu2), count)
    kl = keras.ops.convert_to_numpy(self.kl_sum) / max(count, 1.0)
    return {"active_units": int(active.sum()),
            "active_units_per_step": [int(a) for a in active.sum(axis=1)],
            "kl_per_step": [round(float(k), 4) for k in kl]}

  def get_config(self):
    return {**super().get_config(), "num_steps": self.num_steps, "latent_dim": self.latent_dim}


def collapse_message(test_kl: float, step: int) -> str | None:
  """The posterior-collapse warning for a test KL below :data:`COLLAPSE_KL_NATS`, else ``None``."""
  if not test_kl < COLLAPSE_KL_NATS:
    return None
  return (
      f"Posterior collapse at step {step}: the test KL is {test_kl:.3f} nats, so the latents z_t "
      "carry (almost) nothing about the image and every sample is the same mean image. Fields that "
      "help: --config.model.window_init=tile (read windows that see the digit at the first step), "
      "--config.train.kl_warmup_steps (anneal the KL weight from 0), --config.train.warmup_steps "
      "(learning-rate warm-up), or another --config.train.seed.")
