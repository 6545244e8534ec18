"""The maths of alignDRAW (Mansimov et al. 2016, "Generating Images from Captions with Attention").

Pure functions of tensors (no Keras layer, no weights of their own); the layers
that own the weights are in :mod:`draw_tf.model.caption_layers`, the step and
the model in :mod:`draw_tf.model.align_draw`. The formulas below match the
authors' Theano code for MNIST with captions (prior, align function, decoder
input, KL; ``docs/maths.md``, "alignDRAW: what was checked"). The equation
numbers were written from memory of the paper's section 3 (arXiv 1511.02793)
and could not be checked against its text: labels here, not citations.

    z_t ~ P(Z_t | Z_{1:t-1}) = N(mu(h_gen_{t-1}), sigma(h_gen_{t-1}))   eq. 1
    mu(h)    = tanh(W_mu h)                                               eq. 2
    sigma(h) = exp(tanh(W_sigma h))                                       eq. 3
    s_t      = align(h_gen_{t-1}, h_lang)                                 eq. 4
    h_gen_t  = LSTM_gen(h_gen_{t-1}, [z_t, s_t])                          eq. 5
    c_t      = c_{t-1} + write(h_gen_t)                                   eq. 6

and the align function (section 3.2):

    alpha_k^t = exp(v^T tanh(U h_lang_k + W h_gen_{t-1} + b))
                / sum_i exp(v^T tanh(U h_lang_i + W h_gen_{t-1} + b))
    s_t       = sum_k alpha_k^t h_lang_k

The bound (section 3.3) is DRAW's with the caption ``y`` as condition:
``L = -log p(x | y, Z_{1:T}) + sum_t KL(Q(Z_t | x, y, Z_{1:t-1}) || P(Z_t | Z_{1:t-1}, y))``,
the KL between two diagonal Gaussians in closed form (:func:`gaussian_kl`).
Padding (token id 0) never receives alignment weight (:func:`alignment_weights`).
"""

from __future__ import annotations

import tensorflow as tf

# A finite "minus infinity" for masked scores: exp() of it is exactly 0 in float32
# next to any real score, and a row that is all padding still gives no NaN.
_MASKED_SCORE = -1e9


def bounded_prior(raw_mu: tf.Tensor, raw_log_sd: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """The prior's ``(mu, log_sigma)`` from its two linear maps of ``h_gen_{t-1}`` (eqs. 2-3).

  Args:
    raw_mu: ``[batch, latent_dim]`` ``W_mu h_gen_{t-1}``.
    raw_log_sd: ``[batch, latent_dim]`` ``W_sigma h_gen_{t-1}``.

  Returns:
    ``(tanh(raw_mu), tanh(raw_log_sd))``, each ``[batch, latent_dim]``: the mean
    lies in (-1, 1) and the standard deviation in (1/e, e).
  """
  return tf.tanh(raw_mu), tf.tanh(raw_log_sd)


def alignment_scores(lang_proj: tf.Tensor, gen_proj: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
  """``e_k^t = v^T tanh(U h_lang_k + W h_gen_{t-1} + b)`` (the align function's exponent).

  Args:
    lang_proj: ``[batch, L, align_units]`` ``U h_lang_k`` (computed once per caption).
    gen_proj: ``[batch, align_units]`` ``W h_gen_{t-1} + b``.
    v: ``[align_units]``.

  Returns:
    ``[batch, L]`` scores.
  """
  hidden = tf.tanh(lang_proj + gen_proj[:, None, :])
  return tf.tensordot(hidden, v, axes=[[2], [0]])


def alignment_weights(scores: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """``alpha^t``: softmax of the scores over the caption's real words (padding gets exactly 0).

  Args:
    scores: ``[batch, L]`` from :func:`alignment_scores`.
    mask: ``[batch, L]`` bool, true at real tokens (id != 0).

  Returns:
    ``[batch, L]`` non-negative weights summing to 1 over each row's real tokens
    (a row with no real token gets all zeros).
  """
  masked = tf.where(mask, scores, tf.fill(tf.shape(scores), tf.constant(_MASKED_SCORE, scores.dtype)))
  weights = tf.nn.softmax(masked, axis=-1)
  return weights * tf.cast(mask, weights.dtype)


def alignment_context(weights: tf.Tensor, h_lang: tf.Tensor) -> tf.Tensor:
  """``s_t = sum_k alpha_k^t h_lang_k`` (eq. 4's align).

  Args:
    weights: ``[batch, L]`` from :func:`alignment_weights`.
    h_lang: ``[batch, L, 2 * caption_units]`` the caption's bidirectional states.

  Returns:
    ``[batch, 2 * caption_units]``.
  """
  return tf.einsum("bl,bld->bd", weights, h_lang)


def gaussian_kl(mu_q: tf.Tensor, log_sd_q: tf.Tensor, mu_p: tf.Tensor,
                log_sd_p: tf.Tensor) -> tf.Tensor:
  """``KL(N(mu_q, sd_q^2) || N(mu_p, sd_p^2))`` elementwise (the latent term of section 3.3).

      KL = log(sd_p / sd_q) + (sd_q^2 + (mu_q - mu_p)^2) / (2 sd_p^2) - 1/2

  Args: any broadcastable shapes, e.g. ``[batch, T, latent_dim]`` each.

  Returns:
    the elementwise KL in nats (sum it over latent units and steps for ``L_z``).
  """
  var_ratio = tf.exp(2.0 * (log_sd_q - log_sd_p))
  mean_term = tf.square(mu_q - mu_p) * tf.exp(-2.0 * log_sd_p)
  return (log_sd_p - log_sd_q) + 0.5 * (var_ratio + mean_term) - 0.5
