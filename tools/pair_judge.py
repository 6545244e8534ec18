"""The two-digit judge of ``tools/sample_score.py``: which unordered pair of digits a 60 x 60 image shows.

``multi_mnist`` images hold two MNIST digits pasted at random places, added and
clipped at 255 (:func:`draw_tf.data.derived.compose_multi_digit`); the label is
the unordered pair, one of 55 classes (:func:`pair_class`).

* :func:`build_pair_judge`: a CNN with batch norm whose head scores how many
  copies (0, 1 or 2) of each digit the image holds, 30 scores, and adds them
  into the 55 pair logits by a fixed 0/1 matrix (:func:`count_matrix`): the
  evidence for a 3 is shared by the ten pairs holding a 3.
* :func:`fresh_pairs` composes one epoch of training images afresh from the
  MNIST *training* digits by the dataset's own rule, seeded by ``(seed, epoch)``;
  :func:`pair_examples` streams epoch after epoch. The judge never sees a test
  digit, and never the same composition twice.

Example::

    judge = build_pair_judge((60, 60, 1))
    images, classes = fresh_pairs(digits, seed=0, epoch=0)   # digits: the MNIST training Split
"""

from __future__ import annotations

import numpy as np

NUM_PAIRS = 55  # 10 same-digit pairs + 45 distinct pairs
CANVAS_SIZE = 60  # multi_mnist's images: 60 x 60 x 1


def _pair_table() -> np.ndarray:
  """``int [10, 10]``: the class of the unordered pair ``(a, b)``, symmetric."""
  table = np.zeros((10, 10), np.int64)
  pairs = [(a, b) for a in range(10) for b in range(a, 10)]  # (0,0), (0,1), ... (9,9): 55
  for k, (a, b) in enumerate(pairs):
    table[a, b] = table[b, a] = k
  return table


PAIR_TABLE = _pair_table()


def pair_class(labels) -> np.ndarray:
  """The class in 0..54 of each unordered pair of digits.

  Args:
    labels: int ``[..., 2]`` digit labels (``multi_mnist``'s).

  Returns:
    int64 ``[...]``: ``(a, b)`` and ``(b, a)`` share a class; distinct pairs distinct classes.
  """
  labels = np.asarray(labels)
  return PAIR_TABLE[labels[..., 0], labels[..., 1]]


def pair_of(cls: int) -> tuple:
  """The pair ``(a, b)``, ``a <= b``, of a class of :func:`pair_class`."""
  a, b = np.argwhere(PAIR_TABLE == cls)[0]
  return int(a), int(b)


def count_matrix() -> np.ndarray:
  """``float32 [30, 55]``: row ``3 * d + c`` is 1 in the columns of the pairs holding ``c`` copies of digit ``d``.

  Each column has ten ones, one per digit, whose counts sum to 2.
  """
  matrix = np.zeros((10, 3, NUM_PAIRS), np.float32)
  for cls in range(NUM_PAIRS):
    counts = np.bincount(pair_of(cls), minlength=10)
    matrix[np.arange(10), counts, cls] = 1.0
  return matrix.reshape(30, NUM_PAIRS)


def build_pair_judge(image_shape=(CANVAS_SIZE, CANVAS_SIZE, 1)):
  """The judge: conv-BN-ReLU blocks, dense 256, 30 digit-count scores, the 55 pair probabilities.

  A 5 x 5 stride-2 stem, then blocks of two 3 x 3 convolutions with 64 and 128
  filters, each block max-pooled (60 -> 30 -> 15 -> 7 -> 3); a 256-unit dense
  layer with dropout; a dense layer of 30 scores ``s[d, c]`` (``c`` copies of
  digit ``d``); pair ``(a, b)``'s logit is the sum over digits of
  ``s[d, count of d in (a, b)]`` (a fixed, untrained :func:`count_matrix`).

  Returns:
    A ``keras.Model`` ``[batch, 60, 60, 1]`` images in [0, 1] -> ``[batch, 55]`` probabilities.
  """
  import keras  # pylint: disable=g-import-not-at-top
  layers = keras.layers

  def conv(x, filters, size=3, strides=1):
    x = layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))

  images = keras.Input(image_shape)
  x = layers.MaxPooling2D()(conv(images, 32, 5, 2))
  for filters in (64, 128):
    x = layers.MaxPooling2D()(conv(conv(x, filters), filters))
  x = layers.Dropout(0.3)(layers.Dense(256, activation="relu")(layers.Flatten()(x)))
  scores = layers.Dense(30, name="digit_count_scores")(x)
  pairs = layers.Dense(NUM_PAIRS, use_bias=False, trainable=False, name="pair_logits")
  probs = layers.Softmax()(pairs(scores))
  pairs.set_weights([count_matrix()])
  return keras.Model(images, probs, name="pair_judge")


def fresh_pairs(digits, seed: int, epoch: int):
  """One epoch of two-digit training images, composed afresh by ``multi_mnist``'s rule, shuffled.

  Args:
    digits: a :class:`draw_tf.data.Split` of MNIST training digits, ``uint8 [N, 28, 28, 1]``, labels ``[N]``.
    seed: the judge's seed (stream ``SAMPLE_SCORE_JUDGE``); with ``epoch`` the only randomness.
    epoch: the epoch: each gives other partners and places.

  Returns:
    ``(images, classes)``: ``uint8 [N, 60, 60, 1]`` (image ``i`` of the unshuffled
    epoch holds digit ``i`` and a random other) and their pair classes ``int64 [N]``.
  """
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  from draw_tf.data import derived  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng([seeds.numpy_seed(seed, seeds.SAMPLE_SCORE_JUDGE), epoch])
  images, sources, _ = derived.compose_multi_digit(digits.images, rng, CANVAS_SIZE)
  order = rng.permutation(len(images))
  return images[order], pair_class(digits.labels[sources[order]])


def pair_examples(digits, seed: int):
  """An endless ``tf.data.Dataset`` of ``(uint8 [60, 60, 1] image, class)``: epochs 0, 1, ... of :func:`fresh_pairs`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def epoch_arrays(epoch):
    return fresh_pairs(digits, seed, int(epoch))

  def epoch_dataset(epoch):
    images, classes = tf.numpy_function(epoch_arrays, [epoch], (tf.uint8, tf.int64), stateful=False)
    images = tf.ensure_shape(images, [digits.num_examples, CANVAS_SIZE, CANVAS_SIZE, 1])
    return tf.data.Dataset.from_tensor_slices((images, tf.ensure_shape(classes, [digits.num_examples])))

  return tf.data.Dataset.range(np.iinfo(np.int64).max).flat_map(epoch_dataset)
