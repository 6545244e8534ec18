"""The caption-conditioned decoder's part of an export (alignDRAW, Mansimov et al. 2016).

:mod:`draw_tf.export.export_lib` exports a :class:`draw_tf.AlignDrawModel` as it
exports DRAW's decoder, with what differs taken from here:

- the signatures (:func:`signature_functions`, :func:`input_signatures`):
  ``generate(captions: int32 [batch, L], noise: float32 [batch, T, latent_dim])``
  and ``sample(captions)`` (the noise drawn inside), both returning ``images``,
  ``canvases`` and ``write_windows`` as DRAW's; the graph is
  :func:`draw_tf.model.caption_decoder.decode_captioned`;
- the self-check's captions (:func:`verification_captions`) and its
  tolerances, float32 (:func:`float32_tolerance`, max abs) and int8
  (:func:`int8_tolerance`, mean abs: :func:`int8_problems`), derived where they are defined.

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
# roundings differs (the caption LSTM unrolled, every write in one pass, XNNPACK's kernels and their
# approximations of exp, sigmoid and tanh), each op off by a few u = 2^-24 = 6e-8 relative. What those
# roundings do to a picture depends on how much the model amplifies them, and training makes it amplify
# more: a random model hardly at all (T = 32, 300 units, 60 x 60: the float32 file off by 1e-6), the
# paper-size model of configs/mnist_captions.py much more. Changing each of its weights by one u (random
# signs) moves its images and canvases, over the self-check's 8 captions for seeds 0-5, by up to 1.6e-5
# at step 5,529 and by up to 1.7e-4 at step 16,980 (the end of its four-hour budget): two float32
# computations of the trained model that are both correct differ by that much. Its artifacts, measured
# likewise at step 16,980: the float32 file through XNNPACK up to 4.6e-4 (canvases; images 2.0e-4),
# through TFLite's reference kernels up to 2.4e-4, the SavedModel 0 (at step 5,529: 8.5e-5, 2.6e-5, 0).
# XNNPACK's ops are each off by a few u where Keras' weights were moved by one, so we allow 1e-3 on
# images and canvases, a quarter of a grey level of 255 (DRAW's decoders keep self_check's 1e-4: the
# trained MNIST model's float32 file is off by 2.5e-5). Windows are in pixels: a centre
# (A + 1) / 2 (gx~ + 1) multiplies the error of gx~ by half the image side, so they get 1e-4 per pixel
# of half the larger side (3e-3 px at 60 x 60; measured up to 3.4e-5 px at step 16,980).
FLOAT32_TOLERANCE_IMAGES = 1e-3
FLOAT32_TOLERANCE_WINDOWS_PER_PIXEL = 1e-4
# The dynamic-range int8 file is bounded by its *mean* abs difference over all pixels (and window
# values). Its weights are rounded to 1/254 of each column's largest magnitude and its activations
# quantised per row at run time: a perturbation of every weight by up to 0.2 % of its column's
# largest, which a trained recurrent drawer amplifies into moved strokes, so single pixels move by a
# lot while the picture stays the same. Measured on the trained model above: the int8 file's images
# differ from Keras by 1.3e-3 to 3.5e-3 on average (max 0.12 to 0.65) and its windows by 0.04 to 0.07
# px; Keras itself, its weights moved by uniform noise of the int8 rounding's size, by 2.2e-3 to
# 2.5e-3 on average (max 0.22 to 0.27): the int8 file is as close as int8 weights allow. We allow a
# mean of 1e-2 on images and canvases (2.6 grey levels of 255) and 1e-2 per pixel of half the larger
# side on windows (0.3 px at 60 x 60); the largest pixel difference is recorded, not bounded (as DRAW's).
INT8_TOLERANCE_IMAGES = 1e-2
INT8_TOLERANCE_WINDOWS_PER_PIXEL = 1e-2


def _tolerance(config: dict, images: float, windows_per_pixel: float) -> dict:
  half_side = max(config["image_shape"][:2]) / 2
  return {"images": images, "canvases": images, "write_windows": windows_per_pixel * max(1.0, half_side)}


def float32_tolerance(config: dict) -> dict:
  """Output name -> max abs difference allowed against Keras for a float32 caption decoder (see above)."""
  return _tolerance(config, FLOAT32_TOLERANCE_IMAGES, FLOAT32_TOLERANCE_WINDOWS_PER_PIXEL)


def int8_tolerance(config: dict) -> dict:
  """Output name -> *mean* abs difference allowed against Keras for the dynamic-range int8 file (see above)."""
  return _tolerance(config, INT8_TOLERANCE_IMAGES, INT8_TOLERANCE_WINDOWS_PER_PIXEL)


def mean_abs_diffs(got, want) -> dict:
  """``mean |got - want|`` per output of two ``Samples`` (``inf`` for NaN/Inf or a shape mismatch).

  A window column that neither side has (NaN in both, ``sampler.full_windows``) is left out.
  """
  diffs = {}
  for name, a, b in zip(contract.OUTPUTS, got, want):
    both = np.isnan(a) & np.isnan(b) if a.shape == b.shape else None
    diff = float(np.mean(np.abs(a - b)[~both])) if both is not None and (~both).any() else float("inf")
    diffs[name] = diff if np.isfinite(diff) else float("inf")
  return diffs


def int8_problems(name: str, got, want, config: dict) -> tuple:
  """``(mean abs diff per output, problems)`` of an int8 caption decoder's outputs against Keras'."""
  means, bound = mean_abs_diffs(got, want), int8_tolerance(config)
  over = {k: v for k, v in means.items() if not v <= bound[k]}
  return means, ([f"{name}: mean abs diff over the int8 tolerance: "
                  + ", ".join(f"{k} {v:.3g} > {bound[k]:g}" for k, v in over.items())] if over else [])


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
