"""Named random streams: every seeded draw in draw-tf, in one table.

A stream is a stateless TensorFlow (or NumPy) seed derived from a user seed
(``config.data.seed``, ``config.eval.sample_seed``, a ``--seed`` flag) and a
counter (a training step, a batch index). Each use gets its own stream, so two
uses of one user seed never share random numbers, and every program that
draws the same thing (``draw-eval`` and ``tools/compare_variants.py``; a
workdir, a SavedModel and a ``.tflite`` sampler) draws it the same way.

The offsets are the values the project has always used (primes, so that
``seed + offset`` of one stream does not meet another's for small seeds);
changing one changes every result that depends on it.

==========================  ==============================================  =========
stream                      what it draws                                   offset
==========================  ==============================================  =========
``TRAIN_ORDER``             a data epoch's permutation of the train split   0
``FIXED_BINARIZATION``      the train split's one sample (``fixed``)        0
``TEST_BINARIZATION``       the fixed Bernoulli sample of the test split    1
``TRAIN_BINARIZATION``      the fixed sample of the train split (eval)      2
                            and of a validation split
``HELDOUT_BINARIZATION``    the fixed sample of ``mnist_captions`` heldout  3
``DYNAMIC_BINARIZATION``    a training batch's fresh Bernoulli sample       7919
``TRAIN_NOISE``             a training batch's ``eps`` (fixed-noise runs)   104729
``EVAL_NOISE``              an evaluation batch's posterior ``eps``         15485863
``PRIOR_NOISE``             generation's prior ``eps`` (``generate``)       0 (second word 0)
``DECOMPRESS_NOISE``        ``draw-compress``'s prior ``eps`` after step K  0 (batch counter)
``RECONSTRUCTION_NOISE``    the posterior ``eps`` of the tools' pictures    0 (second word 1)
``FRESH_CLUTTER``           a data epoch's cluttered_mnist placements       1299709
``SAMPLE_SCORE_JUDGE``      the judge of ``tools/sample_score.py``          7368787
``MNIST_CAPTIONS``          ``mnist_captions``' layouts (NumPy, per split)  2750159
==========================  ==============================================  =========

The offset-0 streams are the oldest: ``FIXED_BINARIZATION`` is a NumPy seed,
and ``TRAIN_ORDER``'s epoch-0 seed ``[seed, 0]`` equals ``PRIOR_NOISE``'s but
feeds a shuffle, not a normal draw. ``multi_mnist`` and ``cluttered_mnist``
are built with ``numpy.random.default_rng([seed, split, dataset])``
(:mod:`draw_tf.data.derived`), a three-word seed of their own; ``mnist_captions``
uses ``numpy.random.default_rng([seed + MNIST_CAPTIONS, split, data epoch])``
(:mod:`draw_tf.data.captions`).
"""

from __future__ import annotations

import tensorflow as tf

TRAIN_ORDER = 0
FIXED_BINARIZATION = 0
TEST_BINARIZATION = 1
TRAIN_BINARIZATION = 2
HELDOUT_BINARIZATION = 3
DYNAMIC_BINARIZATION = 7919
TRAIN_NOISE = 104729
EVAL_NOISE = 15485863
DECOMPRESS_NOISE = 0
RECONSTRUCTION_NOISE = 0
FRESH_CLUTTER = 1299709
SAMPLE_SCORE_JUDGE = 7368787
MNIST_CAPTIONS = 2750159


def numpy_seed(seed: int, stream: int) -> int:
  """The ``numpy.random.default_rng`` seed of ``stream`` for the user seed ``seed``."""
  return int(seed) + int(stream)


def stateless(seed, stream: int, counter) -> tf.Tensor:
  """The ``tf.random.stateless_*`` seed ``[seed + stream, counter]`` (int64 ``[2]``).

  Args:
    seed: the user seed (int or int tensor).
    stream: one of this module's stream offsets.
    counter: the step or batch index (int or int64 tensor).
  """
  return tf.stack([tf.cast(seed, tf.int64) + stream, tf.cast(counter, tf.int64)])


def prior_seed(seed: int) -> list:
  """The seed of :func:`prior_normal`: ``[seed, 0]``."""
  return [int(seed), 0]


def prior_normal(shape, seed: int) -> tf.Tensor:
  """Generation's prior noise, float32 standard normal of ``shape`` (``[N, T, latent_dim]``).

  ``DrawModel.generate(seed=)``, ``draw-sample --seed`` and the exported
  samplers' ``prior_noise`` all draw it here, so one seed gives one picture.
  """
  return tf.random.stateless_normal(shape, seed=prior_seed(seed))


def reconstruction_normal(shape, seed: int) -> tf.Tensor:
  """The posterior noise of the tools' reconstruction pictures: ``[seed, 1]`` (``RECONSTRUCTION_NOISE``)."""
  return tf.random.stateless_normal(shape, seed=[int(seed) + RECONSTRUCTION_NOISE, 1])
