"""The Keras layers of alignDRAW (Mansimov et al. 2016): caption encoder, align, bounded prior.

The maths they apply is in :mod:`draw_tf.model.align_maths` (equation numbers
there); these layers own the weights. Token id 0 is padding everywhere
(``draw_tf.data.caption_grammar.PAD_ID``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from draw_tf.model import align_maths
from draw_tf.model.cell import LearnedPrior

_PACKAGE = "draw_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaptionEncoder(keras.layers.Layer):
  """Word embedding and a bidirectional LSTM over a caption (section 3.1's language model).

  ``h_lang_k = [h_forward_k, h_backward_k]``; padding (id 0) is masked, so the
  states of the real words do not depend on how much padding follows them.

  Args:
    vocab_size: number of token ids including the padding id 0.
    word_dim: size of each word embedding.
    units: state size of each direction's LSTM.

  Call args:
    captions: ``[batch, L]`` int token ids, right-padded with 0.

  Returns:
    ``(h_lang [batch, L, 2 * units] float32, mask [batch, L] bool)``.
  """

  def __init__(self, vocab_size: int, word_dim: int = 32, units: int = 64, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size, self.word_dim, self.units = int(vocab_size), int(word_dim), int(units)
    self.embedding = keras.layers.Embedding(self.vocab_size, self.word_dim, name="embedding",
                                            dtype="float32")
    self.bilstm = keras.layers.Bidirectional(
        keras.layers.LSTM(self.units, return_sequences=True, dtype="float32"),
        merge_mode="concat", name="bilstm", dtype="float32")

  def build(self, captions_shape=None):
    length = None if captions_shape is None else captions_shape[1]
    self.embedding.build((None, length))
    self.bilstm.build((None, length, self.word_dim))
    self.built = True

  def call(self, captions):
    ids = tf.cast(captions, tf.int32)
    mask = tf.not_equal(ids, 0)
    h_lang = self.bilstm(self.embedding(ids), mask=mask)
    return tf.identity(tf.cast(h_lang, tf.float32)), mask  # identity: a fresh tensor, no Keras mask attached

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size, "word_dim": self.word_dim,
            "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Align(keras.layers.Layer):
  """The align function (section 3.2, eq. 4): attention over the caption given ``h_gen_{t-1}``.

  Weights ``U`` (``lang``, no bias), ``W`` and ``b`` (``gen``) and ``v``
  (:func:`draw_tf.model.align_maths.alignment_scores`).

  Args:
    units: size of the hidden layer of the score (``v``'s length).

  Use: ``lang_proj = align.project(h_lang)`` once per caption, then each step
  ``s_t, alpha_t = align(lang_proj, h_lang, mask, h_gen)``.
  """

  def __init__(self, units: int = 64, **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)
    self.lang = keras.layers.Dense(self.units, use_bias=False, name="lang", dtype="float32")
    self.gen = keras.layers.Dense(self.units, name="gen", dtype="float32")

  def build(self, lang_shape, gen_shape):
    """``lang_shape``: ``(batch, L, 2 * caption_units)``; ``gen_shape``: ``(batch, decoder_units)``."""
    self.lang.build(tuple(lang_shape))
    self.gen.build(tuple(gen_shape))
    self.v = self.add_weight(name="v", shape=(self.units,), initializer="glorot_uniform")
    self.built = True

  def project(self, h_lang):
    """``U h_lang_k``: ``[batch, L, 2u]`` -> ``[batch, L, align_units]``."""
    return self.lang(h_lang)

  def call(self, lang_proj, h_lang, mask, h_gen):
    """``(s_t [batch, 2u], alpha_t [batch, L])`` from ``h_gen_{t-1}`` ``[batch, decoder_units]``."""
    scores = align_maths.alignment_scores(lang_proj, self.gen(h_gen), self.v)
    alpha = align_maths.alignment_weights(scores, mask)
    return align_maths.alignment_context(alpha, h_lang), alpha

  def get_config(self):
    return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BoundedPrior(LearnedPrior):
  """alignDRAW's prior ``P(Z_t | Z_{1:t-1}) = N(tanh(W_mu h), exp(tanh(W_sigma h)))`` (eqs. 1-3).

  :class:`draw_tf.model.cell.LearnedPrior` (the project's ``prior="learned"``)
  with the paper's ``tanh`` bounds; it also starts as ``N(0, I)``. The KL uses
  :func:`draw_tf.model.align_maths.gaussian_kl`.
  """

  def params(self, h_dec):
    """``(mu^p, log_sd^p)``, each ``[batch, latent_dim]``, from ``h_gen_{t-1}``."""
    raw_mu, raw_log_sd = tf.split(self(h_dec), 2, axis=-1)
    return align_maths.bounded_prior(raw_mu, raw_log_sd)

  def kl_per_step(self, out: dict):
    """``[batch, T]`` nats: the KL of each step summed over latent units."""
    kl = align_maths.gaussian_kl(out["mu"], out["log_sd"], out["prior_mu"], out["prior_log_sd"])
    return tf.reduce_sum(kl, axis=-1)
