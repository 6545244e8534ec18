"""alignDRAW generation as one graph for export: the caption read once, the decoder loop, one write pass.

What the SavedModel and TFLite exports of a caption model run
(:mod:`draw_tf.export.export_lib`); it equals :meth:`draw_tf.AlignDrawModel.decode`
(the step-by-step unroll of :mod:`draw_tf.model.unroll`) up to float rounding, which
``tests/test_caption_export.py`` checks. Mansimov et al. 2016, eqs. 1-6
(:mod:`draw_tf.model.align_maths`):

1. the caption encoder (section 3.1) as a Python loop over the ``L`` words of the
   fixed caption length, both directions (:func:`encode_caption`): the Keras
   ``Bidirectional(LSTM)`` runs a ``TensorArray`` loop, which does not convert to
   TFLite builtin ops with a dynamic batch size; this is the same arithmetic with
   the same weights and the same masking (a padded word keeps the state and
   outputs zeros, as Keras's ``Bidirectional`` with ``return_sequences``);
2. the decoder's recurrence in :func:`draw_tf.model.sequence_decoder.blocked_recurrence`
   (blocks of steps, ``DYNAMIC_UPDATE_SLICE``), each step ``s_t = align(h_gen_{t-1})``
   (eq. 4), ``z_t = mu^p_t + sigma^p_t eps_t`` from the learned prior on ``h_gen_{t-1}``
   (eqs. 1-3) and ``h_gen_t = LSTM([z_t, s_t], h_gen_{t-1})`` (eq. 5), calling the
   model's own layers; the write of a step depends only on ``h_gen_t``, so
3. every step is written in one batched pass and the canvases are one cumulative
   sum (eq. 6, :func:`draw_tf.model.sequence_decoder.write_steps`).

Example::

    from draw_tf.model import caption_decoder
    out = caption_decoder.decode_captioned(model, captions, noise)  # [N, L] int32, [N, T, z]
    out["images"], out["canvases"], out["windows"]                  # as AlignDrawModel.decode
"""

from __future__ import annotations

import tensorflow as tf

from draw_tf.model import inputs as input_checks
from draw_tf.model import layers
from draw_tf.model import sequence_decoder


def _masked_lstm(cell, inputs, mask, reverse: bool):
  """One direction of the caption LSTM, unrolled over the static length ``L``.

  Args:
    cell: a ``keras.layers.LSTMCell`` (``kernel``, ``recurrent_kernel``, ``bias``; Keras's gate order).
    inputs: ``[batch, L, word_dim]`` word embeddings.
    mask: ``[batch, L]`` bool, true at real words.
    reverse: run from the last word to the first (the backward direction).

  Returns:
    ``[batch, L, units]``: each word's state (zeros at padding), in word order.
  """
  length, units = int(inputs.shape[1]), int(cell.units)
  projected = tf.einsum("bld,dg->blg", inputs, cell.kernel)  # every word's input projection at once
  h = tf.zeros([tf.shape(inputs)[0], units])
  c = h
  outputs = [None] * length
  for k in (reversed(range(length)) if reverse else range(length)):
    h_new, c_new = layers.lstm_update(projected[:, k] + tf.matmul(h, cell.recurrent_kernel) + cell.bias, c)
    real = mask[:, k:k + 1]
    h, c = tf.where(real, h_new, h), tf.where(real, c_new, c)  # padding keeps the state
    outputs[k] = tf.where(real, h_new, tf.zeros_like(h_new))
  return tf.stack(outputs, axis=1)


def encode_caption(encoder, captions):
  """:class:`draw_tf.model.caption_layers.CaptionEncoder`'s output, unrolled over the static length.

  Args:
    encoder: the model's ``cell.caption_encoder``.
    captions: ``[batch, L]`` int token ids with a static ``L`` (0 pads).

  Returns:
    ``(h_lang [batch, L, 2 * units], mask [batch, L] bool)``.
  """
  ids = tf.cast(captions, tf.int32)
  if ids.shape.rank != 2 or ids.shape[1] is None:
    raise ValueError(f"captions must be [batch, L] with a static L for export, got {ids.shape}.")
  mask = tf.not_equal(ids, 0)
  words = tf.gather(encoder.embedding.embeddings, ids)  # [batch, L, word_dim]
  bilstm = encoder.bilstm
  forward = _masked_lstm(bilstm.forward_layer.cell, words, mask, reverse=False)
  backward = _masked_lstm(bilstm.backward_layer.cell, words, mask, reverse=True)
  return tf.concat([forward, backward], axis=-1), mask


def decode_captioned(model, captions, noise,
                     steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION) -> dict:
  """Generation from the captions, as :meth:`draw_tf.AlignDrawModel.decode`, in a graph that converts.

  Args:
    model: a :class:`draw_tf.AlignDrawModel`.
    captions: ``[N, L]`` int32 token ids (static ``L``; 0 pads).
    noise: ``[N, T, latent_dim]`` float32 standard normal ``eps_t``.
    steps_per_iteration: decoder steps per loop iteration
      (:func:`draw_tf.model.sequence_decoder.blocked_recurrence`).

  Returns:
    dict with ``images`` ``[N, H, W, C]``, ``canvases`` ``[N, T, H, W, C]`` and
    ``windows`` ``[N, T, 4]`` (:func:`draw_tf.model.sequence_decoder.write_steps`).
  """
  cell = model.cell
  noise = input_checks.check_noise(noise, model.num_steps, model.latent_dim)
  h_lang, mask = encode_caption(cell.caption_encoder, captions)  # section 3.1
  lang_proj = cell.align.project(h_lang)  # U h_lang, once per caption
  blocks = sequence_decoder.noise_blocks(noise, model.num_steps, steps_per_iteration)
  batch, units = tf.shape(noise)[0], cell.decoder_units

  def block_step(i, block, carry):
    h, c = carry
    outputs = []
    for eps in tf.unstack(tf.reshape(tf.gather(blocks, i), [block, batch, model.latent_dim]), num=block):
      s, _ = cell.align(lang_proj, h_lang, mask, h)  # eq. 4: aligns with h_gen_{t-1}
      z = cell.prior.sample(eps, h)  # eqs. 1-3: the learned prior on h_gen_{t-1}
      h, (_, c) = cell.decoder(tf.concat([z, s], axis=-1), (h, c))  # eq. 5
      outputs.append(h)
    return outputs, (h, c)

  zeros = tf.zeros([batch, units])
  hidden = sequence_decoder.blocked_recurrence(block_step, model.num_steps, batch, units, (zeros, zeros),
                                               steps_per_iteration)
  return sequence_decoder.write_steps(model, hidden)  # eq. 6 for every step at once
