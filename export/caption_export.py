"""The caption-conditioned decoder's part of an export (alignDRAW, Mansimov et al. 2016).

:mod:`draw_tf.export.export_lib` exports a :class:`draw_tf.AlignDrawModel` as it
exports DRAW's decoder, with what differs taken from here:

- the signatures (:func:`signature_functions`, :func:`input_signatures`):
  ``generate(captions: int32 [batch, L], noise: float32 [batch, T, latent_dim])``
  and ``sample(captions)`` (the noise drawn inside), both returning ``images``,
  ``canvases`` and ``write_windows`` as DRAW's; the graph is
  :func:`draw_tf.model.caption_decoder.decode_captioned`;
- the self-check's captions (:func:`verification_captions`) and its
  tolerances, float32 (:func:`float32_tolerance`) and int8 (:func:`int8_tolerance`),
  derived where they are defined.

``noise`` is standard normal ``eps_t``: the learned prior of ``h_gen_{t-1}`` turns it
into ``z_t = mu^p_t + sigma^p_t eps_t`` inside the graph, as
``AlignDrawModel.generate(captions, noise=)`` does.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from draw_tf.model import caption_decoder
from draw_tf.model import sequence_decoder
from draw_tf.export import contract

# Max abs difference allowed between a float32 artifact of a caption decoder and the Keras model, per
# output. The artifacts compute what Keras computes with the same float32 weights; only the order of the
# roundings differs (the caption LSTM unrolled, every write in one pass, XNNPACK's kernels), each off by
# at most u = 2^-24 = 6e-8 relative. A canvas logit c_t = sum_s write(h_s) of T terms of order 1, each
# the end of a chain of about ten roundings per step, moves by about 10 T u = 2e-5 at T = 32 (a worst
# case: the roundings do not all add up), and sigmoid's slope is at most 1/4, so images and canvases
# stay within 1e-5. Windows are in pixels: a centre (A + 1) / 2 (gx~ + 1) multiplies the error of gx~
# by half the image side, so they get 1e-5 per pixel of half the larger side (3e-4 px at 60 x 60).
# Measured at the paper's sizes (T = 32, 300 units, 60 x 60, a random model; tests/test_caption_export.py
# checks a tiny one): images 1e-6, windows 1.7e-5 px through float32 TFLite, 0 through the SavedModel.
FLOAT32_TOLERANCE_IMAGES = 1e-5
FLOAT32_TOLERANCE_WINDOWS_PER_PIXEL = 1e-5
# The same for the dynamic-range int8 file, which the self-check of a caption decoder also bounds. Its
# weights are rounded to 1/254 of each column's largest magnitude (0.4 %) and its activations quantised
# per row at run time; through T steps of the recurrence a logit moves by a few per cent of its size. We
# allow 5e-2 on images and canvases (13 grey levels of 255 at the worst pixel; the mean stays below one)
# and 5e-2 per pixel of half the larger side on windows (1.5 px at 60 x 60). Measured at the paper's
# sizes on a random model: images 8e-3 (mean 1.2e-4), windows 0.27 px.
INT8_TOLERANCE_IMAGES = 5e-2
INT8_TOLERANCE_WINDOWS_PER_PIXEL = 5e-2


def _tolerance(config: dict, images: float, windows_per_pixel: float) -> dict:
  half_side = max(config["image_shape"][:2]) / 2
  return {"images": images, "canvases": images, "write_windows": windows_per_pixel * max(1.0, half_side)}


def float32_tolerance(config: dict) -> dict:
  """Output name -> max abs difference allowed against Keras for a float32 caption decoder (see above)."""
  return _tolerance(config, FLOAT32_TOLERANCE_IMAGES, FLOAT32_TOLERANCE_WINDOWS_PER_PIXEL)


def int8_tolerance(config: dict) -> dict:
  """Output name -> max abs difference allowed against Keras for the dynamic-range int8 file (see above)."""
  return _tolerance(config, INT8_TOLERANCE_IMAGES, INT8_TOLERANCE_WINDOWS_PER_PIXEL)


def signature_functions(model, steps_per_iteration: int = sequence_decoder.DEFAULT_STEPS_PER_ITERATION,
                        sample_seed: int = 0):
  """``(generate, sample)``: the caption decoder's two functions, to trace with :func:`input_signatures`.

  ``sample(captions)`` draws the noise inside the model (``tf.random.normal`` with op seed
  ``sample_seed``, which converts to the builtin ``RANDOM_STANDARD_NORMAL``).
  """
  steps, latent_dim = model.num_steps, model.latent_dim

  def generate(captions, noise):
    out = caption_decoder.decode_captioned(model, captions, noise, steps_per_iteration)
    return {"images": out["images"], "canvases": out["canvases"], "write_windows": out["windows"]}

  def sample(captions):
    noise = tf.random.normal(tf.stack([tf.shape(captions)[0], steps, latent_dim]), seed=sample_seed)
    return generate(captions, noise)

  return generate, sample


def input_signatures(model, batch_size: int | None = None) -> dict:
  """Signature name -> its input specs: ``captions`` ``[batch, L]`` int32 and ``noise`` ``[batch, T, z]``."""
  captions = tf.TensorSpec([batch_size, model.max_caption_length], tf.int32, name=contract.CAPTIONS_INPUT)
  noise = tf.TensorSpec([batch_size, model.num_steps, model.latent_dim], tf.float32, name=contract.NOISE_INPUT)
  return {contract.GENERATE: [captions, noise], contract.SAMPLE: [captions]}


def verification_captions(config: dict, batch_size: int = 8, seed: int = 0) -> np.ndarray:
  """The self-check's captions: ``int32 [batch_size, L]`` of random words, of every length.

  Words are drawn uniformly from the vocabulary (ids ``1 .. len(words)``, or ``vocab_size - 1``
  without a vocabulary) with lengths from 1 to the token limit (the first row at the limit), so
  the check covers the padding mask of every length, not only the grammar's captions.
  """
  caption = config["caption"]
  width = int(caption["input_length"])
  longest = min(width, int(caption.get("max_caption_length", width)))
  num_words = len(caption.get("words", ())) or int(caption["vocab_size"]) - 1
  rng = np.random.default_rng([seed, 1511])  # arXiv:1511.02793; its own stream beside the noise's
  lengths = rng.integers(1, longest + 1, batch_size)
  lengths[0] = longest
  ids = rng.integers(1, num_words + 1, (batch_size, width)).astype(np.int32)
  ids[np.arange(width)[None, :] >= lengths[:, None]] = 0
  return ids
