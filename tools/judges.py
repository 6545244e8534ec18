"""What the judges of ``tools/sample_score.py`` and ``tools/caption_judge.py`` share.

* :func:`build_judge`: the small CNN of the MNIST digit judge (and the caption judge's trunk).
* :func:`shuffled_examples`, :func:`binarised_batches`, :func:`judge_dataset`:
  seeded training batches, each image grey or Bernoulli-binarised (half each).
* :func:`predict`, :func:`accuracy`: class probabilities and accuracy.
* :func:`judge_cache_path`, :func:`cached_judge`: a judge trained once, cached
  atomically outside the repository (``CACHE/judges/NAME.keras`` and ``.json``).
"""

from __future__ import annotations

import json
import os

import numpy as np

# Images per training batch of every judge.
JUDGE_BATCH = 128


def build_judge(image_shape, num_classes: int):
  """A small CNN: three conv-ReLU-pool blocks (a stride-2 stem on large images), dense 256, softmax."""
  import keras  # pylint: disable=g-import-not-at-top
  stem_stride = 2 if image_shape[0] >= 56 else 1
  layers = [keras.Input(image_shape),
            keras.layers.Conv2D(32, 5 if stem_stride == 2 else 3, strides=stem_stride, padding="same",
                                activation="relu"),
            keras.layers.MaxPooling2D()]
  for filters in (64, 128):
    layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D()]
  layers += [keras.layers.Flatten(), keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.3),
             keras.layers.Dense(num_classes, activation="softmax")]
  return keras.Sequential(layers, name="sample_judge")


def shuffled_examples(split, seed: int = 0):
  """An endless, shuffled (seeded) ``tf.data.Dataset`` of a Split's ``(image, label)``."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).repeat()
  return ds.shuffle(10_000, seed=seeds.numpy_seed(seed, seeds.SAMPLE_SCORE_JUDGE))


def binarised_batches(examples, max_value: int, batch_size: int, seed: int = 0):
  """Batches of an endless ``(image, label)`` dataset, each image grey or Bernoulli-binarised (half each), seeded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  ds = examples.batch(batch_size, drop_remainder=True).enumerate()

  @tf.autograph.experimental.do_not_convert  # no Python control flow; and its closure holds modules
  def prepare(step, batch):
    images, labels = batch
    grey = tf.cast(images, tf.float32) / max_value
    noise = tf.random.stateless_uniform(tf.shape(grey), seeds.stateless(seed, seeds.SAMPLE_SCORE_JUDGE, 2 * step))
    binarise = tf.random.stateless_uniform([tf.shape(grey)[0], 1, 1, 1],
                                           seeds.stateless(seed, seeds.SAMPLE_SCORE_JUDGE, 2 * step + 1)) < 0.5
    return tf.where(binarise, tf.cast(noise < grey, tf.float32), grey), labels

  return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def judge_dataset(split, batch_size: int, seed: int = 0):
  """Shuffled training batches of a Split, each image grey or Bernoulli-binarised (half each), seeded."""
  return binarised_batches(shuffled_examples(split, seed), split.max_value, batch_size, seed)


def predict(judge, images, batch_size: int = 500) -> np.ndarray:
  """The judge's class probabilities ``[N, classes]`` of float images in [0, 1]."""
  return np.asarray(judge.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0))


def accuracy(judge, split) -> float:
  """The judge's accuracy on a Split's grey images."""
  probs = predict(judge, split.images.astype(np.float32) / split.max_value)
  return float(np.mean(probs.argmax(axis=1) == split.labels))


def judge_cache_path(data_config, name: str) -> str:
  """``CACHE/judges/NAME.keras``, ``CACHE`` being ``config.data.cache_dir`` or :func:`draw_tf.data.default_cache_dir`."""
  from draw_tf.data import default_cache_dir  # pylint: disable=g-import-not-at-top
  return os.path.join(data_config.cache_dir or default_cache_dir(), "judges", f"{name}.keras")


def cached_judge(path: str, train):
  """The judge cached at ``path`` (a ``.keras`` with its ``.json`` metadata), or ``train()``'s, cached first.

  Args:
    path: from :func:`judge_cache_path`; name it by everything the judge depends on.
    train: ``() -> (judge, info)``: trains a Keras judge, returns it and a JSON-able dict.

  Returns:
    ``(judge, info)``: ``info`` with ``path`` and ``trained_now`` added.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from draw_tf import fileio  # pylint: disable=g-import-not-at-top
  meta_path = path[:-len(".keras")] + ".json"
  if os.path.exists(meta_path) and os.path.exists(path):  # the .json is written last
    with open(meta_path) as f:
      info = json.load(f)
    return keras.models.load_model(path, compile=False), {**info, "path": path, "trained_now": False}
  judge, info = train()
  with fileio.atomic_path(path) as tmp:
    judge.save(tmp)
  fileio.write_json(meta_path, info)
  return judge, {**info, "path": path, "trained_now": True}
