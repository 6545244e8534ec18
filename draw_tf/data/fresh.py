"""Cluttered MNIST composed afresh every data epoch, inside the ``tf.data`` pipeline.

With ``config.data.fresh_each_epoch`` the training images of ``cluttered_mnist``
are not the cached ones: every data epoch (one pass over the training split)
places each training digit again and cuts new clutter, by the rule of
:func:`draw_tf.data.derived.compose_cluttered` (the digit at a uniformly random
place wholly inside the canvas, ``num_fragments`` squares of ``fragment_size``
cut at random places of other random training digits, pasted at random places,
all added and clipped at 255). The placements of data epoch ``e`` are drawn
from the stateless seed ``(seed + FRESH_CLUTTER, e)`` (:mod:`draw_tf.seeds`), so
image ``i`` of epoch ``e`` depends only on ``(seed, e, i)``: a resumed run sees
the images an uninterrupted one would. Validation and test images stay the
cached, fixed ones.

* :func:`load_fresh_clutter` gathers the MNIST digits behind the training split.
* :func:`epoch_placements` draws one data epoch's placements (TensorFlow).
* :func:`compose_batch` pastes a batch from them (TensorFlow, exact integer sums).

Example::

    fresh = load_fresh_clutter(config.data, train)   # train: the cluttered_mnist Split
    corners, fragments = epoch_placements(fresh, seed=0, epoch=3)
    images = compose_batch(fresh, tf.range(64), corners[:64], fragments[:64])
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import ml_collections
import numpy as np
import tensorflow as tf

from draw_tf import seeds
from draw_tf.data.sources import load_source
from draw_tf.data.types import Split
from draw_tf.errors import ConfigError, DataUnavailableError

# The dataset whose training images can be made afresh (data.fresh_each_epoch).
FRESH_DATASETS = ("cluttered_mnist",)


class FreshClutter(NamedTuple):
  """What composes cluttered training images: the digits and the builder's sizes.

  Attributes:
    digits: ``uint8 [N, 28, 28, 1]``: digit ``i`` is training image ``i``'s (same label).
    canvas_size: side of the square image.
    num_fragments: clutter pieces per image.
    fragment_size: side of each piece.
  """
  digits: np.ndarray
  canvas_size: int = 100
  num_fragments: int = 8
  fragment_size: int = 8


def load_fresh_clutter(data_config, train: Split) -> FreshClutter | None:
  """The MNIST training digits behind ``train`` when ``data.fresh_each_epoch`` is on, else None.

  ``cluttered_mnist`` training image ``i`` is built around MNIST training digit
  ``i`` (:mod:`draw_tf.data.derived`), so the first ``train.num_examples``
  digits are those of the training images left after ``max_train_examples``
  and the validation hold-out: held-out digits never appear, not even as clutter.

  Raises:
    ConfigError: ``fresh_each_epoch`` on a dataset other than ``cluttered_mnist``.
    DataUnavailableError: the digits' labels differ from the training split's.
  """
  if not data_config.get("fresh_each_epoch", False):
    return None
  if data_config.name not in FRESH_DATASETS:
    raise ConfigError(f"data.fresh_each_epoch applies to {', '.join(FRESH_DATASETS)} only, not "
                      f"{data_config.name!r}; pass --config.data.fresh_each_epoch=False.")
  mnist_config = ml_collections.ConfigDict(data_config.to_dict())
  mnist_config.train_split = ""  # the whole MNIST training split, as load_derived reads it
  mnist, _, _, _ = load_source("mnist", mnist_config, need_labels=True)
  digits = mnist.head(train.num_examples)
  if digits.num_examples != train.num_examples or not np.array_equal(digits.labels, train.labels):
    raise DataUnavailableError(
        "The MNIST digits do not match the cluttered_mnist training labels (a cache built from "
        "another source?); delete the derived cache under data.cache_dir and rerun.")
  return FreshClutter(digits.images)


def epoch_placements(fresh: FreshClutter, seed, epoch):
  """One data epoch's placements, the same layout as ``compose_cluttered`` reports.

  Args:
    fresh: a :class:`FreshClutter`.
    seed: ``config.data.seed`` (int or int tensor).
    epoch: the data epoch (int or int64 tensor).

  Returns:
    ``(corners, fragments)``: int32 ``[N, 2]`` top-left ``(y, x)`` of each digit,
    and int32 ``[N, num_fragments, 5]`` rows ``(source digit, cut y, cut x, paste y, paste x)``.
  """
  n, size = fresh.digits.shape[0], fresh.digits.shape[1]
  f, canvas, k = fresh.fragment_size, fresh.canvas_size, fresh.num_fragments
  keys = tf.random.experimental.stateless_split(seeds.stateless(seed, seeds.FRESH_CLUTTER, epoch), 4)

  def uniform(shape, key, low, high):  # integers in [low, high]
    return tf.random.stateless_uniform(shape, keys[key], low, high + 1, dtype=tf.int32)

  corners = uniform([n, 2], 0, 0, canvas - size)
  # Clutter comes from another digit than the one shown (offset 1..n-1 from i).
  others = (tf.range(n, dtype=tf.int32)[:, None] + uniform([n, k], 1, 1, max(n, 2) - 1)) % n
  cuts = uniform([n, k, 2], 2, 0, size - f)
  pastes = uniform([n, k, 2], 3, 0, canvas - f)
  return corners, tf.concat([others[..., None], cuts, pastes], axis=-1)


def compose_batch(fresh: FreshClutter, index, corners, fragments, digits=None) -> tf.Tensor:
  """Pastes cluttered images: digit ``index[b]`` at ``corners[b]`` and the ``fragments[b]``.

  Every piece is added and the sum clipped at 255, which equals
  ``compose_cluttered``'s paste-and-clip in turn (all pieces are >= 0). Integer
  sums, compiled with XLA (3.5x fewer CPU-seconds than TensorFlow's scatter
  kernel here): the same images on any machine.

  Args:
    fresh: a :class:`FreshClutter`.
    index: int ``[B]`` digits shown.
    corners: int ``[B, 2]``; fragments: int ``[B, num_fragments, 5]`` (:func:`epoch_placements`).
    digits: ``fresh.digits[..., 0]`` as a tensor (pass one built once; default: made here).

  Returns:
    float32 ``[B, S, S, 1]`` grey levels 0..255.
  """
  digits = tf.constant(fresh.digits[..., 0]) if digits is None else digits  # [N, 28, 28]
  paste = _paste_fn(fresh.digits.shape[1], fresh.fragment_size, fresh.canvas_size)
  return paste(digits, *(tf.cast(t, tf.int32) for t in (index, corners, fragments)))


@functools.lru_cache(maxsize=None)
def _paste_fn(size: int, f: int, canvas: int):
  """The XLA-compiled paste of :func:`compose_batch` for digits of ``size`` and pieces of ``f``."""

  def canvas_indices(b, y, x, rows, cols):
    """``[..., rows, cols, 3]`` coordinates ``(b, y + row, x + col)`` of a patch with top-left ``(y, x)``."""
    ys = y[..., None, None] + tf.range(rows)[:, None]
    xs = x[..., None, None] + tf.range(cols)[None, :]
    shape = tf.shape(ys + xs)
    return tf.stack([tf.broadcast_to(b[..., None, None], shape), tf.broadcast_to(ys, shape),
                     tf.broadcast_to(xs, shape)], axis=-1)

  @tf.function(jit_compile=True)
  def paste(digits, index, corners, fragments):
    batch = tf.shape(index)[0]
    b = tf.range(batch)
    digit_at = canvas_indices(b, corners[:, 0], corners[:, 1], size, size)  # [B, 28, 28, 3]
    digit_values = tf.gather(digits, index)  # [B, 28, 28]
    src, cut_y, cut_x, paste_y, paste_x = tf.unstack(fragments, axis=-1)  # each [B, K]
    fragment_values = tf.gather_nd(digits, canvas_indices(src, cut_y, cut_x, f, f))  # [B, K, f, f]
    fragment_at = canvas_indices(tf.broadcast_to(b[:, None], tf.shape(src)), paste_y, paste_x, f, f)
    indices = tf.concat([tf.reshape(digit_at, [-1, 3]), tf.reshape(fragment_at, [-1, 3])], axis=0)
    values = tf.concat([tf.reshape(digit_values, [-1]), tf.reshape(fragment_values, [-1])], axis=0)
    summed = tf.scatter_nd(indices, tf.cast(values, tf.int32), tf.stack([batch, canvas, canvas]))
    return tf.cast(tf.minimum(summed, 255), tf.float32)[..., None]

  return paste
