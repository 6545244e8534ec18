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
  kl = tfd.kl_divergence(posterior(mu, log_sd), prior(prior_mu, prior_log_sd))  # [batch, T, latent_dim]
  return tf.reduce_sum(kl, axis=[1, 2])
