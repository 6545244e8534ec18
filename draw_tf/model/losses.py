"""DRAW's loss terms (paper eqs. 9-12), per example, in nats.

Each function returns one value per example; callers reduce. The negative ELBO
``L = L_x + L_z`` is an upper bound on ``-log p(x)``.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def bernoulli_nll(images: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Reconstruction loss ``L_x = -log Bernoulli(x | logits = c_T)`` (eq. 9).

  For intensities in (0, 1) this is the cross-entropy the paper uses.

  Args:
    images: ``[batch, height, width, channels]`` targets in [0, 1].
    logits: ``[batch, height, width, channels]`` final canvas ``c_T``.

  Returns:
    ``[batch]`` nats, summed over pixels and channels.
  """
  images = tf.cast(images, tf.float32)
  logits = tf.cast(logits, tf.float32)
  xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
  return tf.reduce_sum(xent, axis=[1, 2, 3])


def posterior(mu: tf.Tensor, log_sd: tf.Tensor) -> tfd.Normal:
  """The approximate posteriors ``q(z_t | h_enc_t) = Normal(mu_t, exp(log_sd_t))`` (eq. 4).

  Args:
    mu: ``[batch, T, latent_dim]``.
    log_sd: ``[batch, T, latent_dim]``.
  """
  return tfd.Normal(loc=tf.cast(mu, tf.float32), scale=tf.exp(tf.cast(log_sd, tf.float32)))


def prior(prior_mu: tf.Tensor | None = None, prior_log_sd: tf.Tensor | None = None) -> tfd.Normal:
  """The prior ``p(z_t)``: ``N(0, I)`` (paper), or a learned ``Normal(mu^p_t, exp(log_sd^p_t))``.

  Args:
    prior_mu: ``None`` for the standard prior, else ``[batch, T, latent_dim]``.
    prior_log_sd: ``None``, else ``[batch, T, latent_dim]``.
  """
  if prior_mu is None:
    return tfd.Normal(loc=tf.constant(0.0), scale=tf.constant(1.0))
  return tfd.Normal(loc=tf.cast(prior_mu, tf.float32),
                    scale=tf.exp(tf.cast(prior_log_sd, tf.float32)))


def latent_kl(mu: tf.Tensor, log_sd: tf.Tensor, prior_mu: tf.Tensor | None = None,
              prior_log_sd: tf.Tensor | None = None) -> tf.Tensor:
  """Latent loss ``L_z = sum_t KL(q(z_t | ...) || p(z_t))`` (eqs. 10-11).

  Computed analytically by TensorFlow Probability. ``p`` is ``N(0, I)``
  unless the learned prior's parameters are given.

  Args:
    mu: ``[batch, T, latent_dim]`` posterior means.
    log_sd: ``[batch, T, latent_dim]`` posterior log standard deviations.
    prior_mu: optional ``[batch, T, latent_dim]`` learned prior means.
    prior_log_sd: optional ``[batch, T, latent_dim]`` learned prior log standard deviations.

  Returns:
    ``[batch]`` nats, summed over steps and latent dimensions.
  """
  return tf.reduce_sum(latent_kl_per_step(mu, log_sd, prior_mu, prior_log_sd), axis=1)


def latent_kl_per_step(mu: tf.Tensor, log_sd: tf.Tensor, prior_mu: tf.Tensor | None = None,
                       prior_log_sd: tf.Tensor | None = None) -> tf.Tensor:
  """``KL(q(z_t | ...) || p(z_t))`` of each step (the terms of eq. 11); ``[batch, T]`` nats.

  Args: as :func:`latent_kl`.
  """
  kl = tfd.kl_divergence(posterior(mu, log_sd), prior(prior_mu, prior_log_sd))  # [batch, T, latent_dim]
  return tf.reduce_sum(kl, axis=2)


LIKELIHOODS = ("bernoulli", "discretized_logistic")
# Intensity levels of 8-bit images.
NUM_LEVELS = 256


def discretized_logistic_log_prob(images: tf.Tensor, mean: tf.Tensor, log_scale: tf.Tensor,
                                  num_levels: int = NUM_LEVELS) -> tf.Tensor:
  """Per-pixel log-probability of 8-bit values under a discretised logistic.

  Pixel values are ``x = k / (L - 1)``, ``k = 0..L-1`` (``L = num_levels``).
  With ``F(v) = sigmoid((v - mean) / s)``, ``s = exp(log_scale)`` and half a
  bin ``b = 1 / (2 (L - 1))``, level ``k`` gets the logistic mass of its bin:

      P(k) = F(x + b) - F(x - b)      for 0 < k < L - 1
      P(0) = F(b)                     (everything below the first bin edge)
      P(L - 1) = 1 - F(1 - b)         (everything above the last edge)

  so the ``L`` probabilities sum to 1 (they telescope). Computed in log space:
  ``log F(v) = -softplus(-u)``, ``log(1 - F(v)) = -softplus(u)``, and for an
  inner bin ``log(F(u+) - F(u-)) = log F(u+) + log(1 - exp(log F(u-) - log F(u+)))``.
  Where the bin's mass underflows (< 1e-5) the density at the bin centre
  times the bin width is used instead.

  Args:
    images: ``[..., H, W, C]`` values ``k / (L - 1)`` in [0, 1] (rounded to the
      nearest level).
    mean: same shape, the logistic's location in [0, 1] units.
    log_scale: broadcastable to ``images``, the log of its scale (clamped at -7).
    num_levels: ``L``.

  Returns:
    Log-probabilities (nats), the shape of ``images``.
  """
  images = tf.cast(images, tf.float32)
  mean = tf.cast(mean, tf.float32)
  log_scale = tf.maximum(tf.cast(log_scale, tf.float32), -7.0)
  top = float(num_levels - 1)
  level = tf.round(images * top)
  x = level / top
  half_bin = 0.5 / top
  inv_scale = tf.exp(-log_scale)
  centred = x - mean
  u_plus = (centred + half_bin) * inv_scale
  u_minus = (centred - half_bin) * inv_scale
  log_cdf_plus = -tf.nn.softplus(-u_plus)  # log F(x + b)
  log_sf_minus = -tf.nn.softplus(u_minus)  # log (1 - F(x - b))
  cdf_delta = tf.sigmoid(u_plus) - tf.sigmoid(u_minus)
  # log(F(u+) - F(u-)), stable where the difference is not tiny.
  log_delta = log_cdf_plus + tf.math.log1p(
      -tf.exp(tf.minimum(-tf.nn.softplus(-u_minus) - log_cdf_plus, -1e-7)))
  u_mid = centred * inv_scale
  log_pdf_mid = u_mid - log_scale - 2.0 * tf.nn.softplus(u_mid) + tf.math.log(2.0 * half_bin)
  inner = tf.where(cdf_delta > 1e-5, log_delta, log_pdf_mid)
  return tf.where(level <= 0, log_cdf_plus, tf.where(level >= top, log_sf_minus, inner))


def discretized_logistic_nll(images: tf.Tensor, mean: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
  """``L_x = -log p(x)`` for 8-bit images under :func:`discretized_logistic_log_prob`.

  Args:
    images: ``[batch, height, width, channels]`` in [0, 1], multiples of 1/255.
    mean: ``[batch, height, width, channels]`` location, e.g. ``sigmoid(c_T)``.
    log_scale: broadcastable to ``images``.

  Returns:
    ``[batch]`` nats, summed over pixels and channels.
  """
  return -tf.reduce_sum(discretized_logistic_log_prob(images, mean, log_scale), axis=[1, 2, 3])


def bits_per_dim(nats: float, num_dims: int) -> float:
  """Converts nats per image to bits per dimension: ``nats / (num_dims * ln 2)``."""
  import math  # pylint: disable=g-import-not-at-top
  return nats / (num_dims * math.log(2.0))
