"""The caption task's parts: alignDRAW's data, evaluation and pictures on ``mnist_captions``.

:class:`draw_tf.training.tasks.CaptionTask` (``config.task = "caption"``,
``configs/mnist_captions.py``) is DRAW's generate task with ``(image, caption)``
pairs; what differs lives here:

* **Splits** (:func:`split`): ``train`` (data epoch 0; training itself composes
  every data epoch afresh from :func:`training_digits`), ``validation`` (what
  training evaluates on), ``test`` and ``heldout`` (the 44 held-out
  compositions), each binarised once with its own stream
  (:data:`BINARIZATION_STREAMS`) unless ``data.binarization = none``, and cut
  to ``data.max_test_examples`` (``train``: ``data.max_train_examples``). The
  dataset is read once per process (:func:`load`).
* **Pipelines** (:func:`train_dataset`, :func:`eval_dataset`) of
  ``{"images", "captions"[, "noise"]}`` dicts (:mod:`draw_tf.data.captions`).
* **Evaluation** (:func:`evaluate`): the NLL bound ``-log p(x | y)`` of
  :func:`draw_tf.training.evaluation.evaluate_split` with the caption ``y`` as
  condition (``--split=heldout``: on the held-out compositions).
* **Pictures**: :func:`write_caption_samples` (training: one row per caption
  of :func:`picture_captions`, half of them held out, and ``samples.txt`` naming
  the rows) and :func:`draw_caption` (``draw-sample --caption=...``; a caption
  the model cannot read is one :class:`~draw_tf.errors.CaptionError` listing the
  vocabulary or stating the length limit).

Example::

    test = captioning.split(config, "heldout")
    result = captioning.evaluate(model, test, iw_samples=1, batch_size=500, seed=0)
"""

from __future__ import annotations

import functools
import json
import os
import random

import ml_collections
import numpy as np
from absl import logging

from draw_tf import data
from draw_tf import seeds
from draw_tf.data import captions
from draw_tf.errors import CaptionError, UsageError
from draw_tf.fileio import atomic_path
from draw_tf.model import visualize
from draw_tf.training.evaluation import evaluate_split

# The fixed Bernoulli sample of each split (draw_tf/seeds.py); also draw-eval's --split choices.
BINARIZATION_STREAMS = {"test": seeds.TEST_BINARIZATION, "heldout": seeds.HELDOUT_BINARIZATION,
                        "validation": seeds.TRAIN_BINARIZATION, "train": seeds.TRAIN_BINARIZATION}
SPLITS = tuple(BINARIZATION_STREAMS)
PICTURE_ROWS = 8  # captions in the training pictures: half of them held out
EXAMPLE = "the digit 7 is at the top of the digit 2"


# ----------------------------------------------------------------------------
# Data


@functools.lru_cache(maxsize=1)
def _load(data_json: str) -> captions.CaptionSplits:
  return captions.load_caption_splits(ml_collections.ConfigDict(json.loads(data_json)))


def load(data_config) -> captions.CaptionSplits:
  """The splits of ``mnist_captions`` for ``config.data``, read once per process (the last config's)."""
  as_dict = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
  return _load(json.dumps(as_dict, sort_keys=True))


def training_digits(config) -> captions.CaptionDigits:
  """The MNIST digits training composes its pairs from (the first ``data.max_train_examples``)."""
  digits = load(config.data).digits
  limit = config.data.max_train_examples
  return captions.CaptionDigits(digits.images[:limit], digits.labels[:limit]) if limit else digits


def training_pairs(config) -> data.Split:
  """Data epoch 0's pairs, unbinarised (a training run counts its steps on them; its batches come from
  :func:`train_dataset`), cut to ``data.max_train_examples``."""
  return load(config.data).train.head(config.data.max_train_examples or None)


def split(config, name: str) -> data.Split:
  """Split ``name`` of :data:`SPLITS` as training and ``draw-eval`` evaluate it (see the module docstring).

  Raises:
    UsageError: ``name`` is not one of :data:`SPLITS`.
  """
  if name not in SPLITS:
    raise UsageError(f"--split={name}: a caption model is evaluated on one of {', '.join(SPLITS)}.")
  chosen = getattr(load(config.data), name)
  limit = config.data.max_train_examples if name == "train" else config.data.max_test_examples
  if limit:
    chosen = chosen.head(limit)
  if config.data.binarization != "none":
    chosen = data.binarize_once(chosen, seed=seeds.numpy_seed(config.data.seed, BINARIZATION_STREAMS[name]))
  return chosen


def info(config) -> data.DataInfo:
  """What :func:`split` reads: dataset, source, image shape, train and test sizes, binarisation."""
  splits = load(config.data)
  limit = config.data.max_test_examples
  return data.DataInfo("mnist_captions", splits.source, tuple(splits.test.images.shape[1:]),
                       len(training_digits(config).labels), splits.test.head(limit or None).num_examples,
                       config.data.binarization)


def train_dataset(config, start_step: int, noise_shape=None):
  """The endless training stream from ``start_step``: pairs composed afresh every data epoch."""
  return captions.caption_train_dataset(
      training_digits(config), config.train.batch_size, config.data.seed, start_step=start_step,
      dynamic_binarization=config.data.binarization == "dynamic", noise_shape=noise_shape)


def eval_dataset(config, chosen: data.Split, noise_shape=None):
  """Every pair of ``chosen`` once, for ``model.evaluate`` (``config.eval.batch_size``)."""
  return captions.caption_eval_dataset(chosen, config.eval.batch_size, noise_shape, config.data.seed)


def evaluate(model, chosen: data.Split, iw_samples: int = 1, batch_size: int = 500, seed: int = 0,
             jit_compile: bool | None = None) -> dict:
  """``draw-eval``'s bounds of ``-log p(x | y)`` over every pair of ``chosen`` (XLA: ``model.jit_step`` unless given)."""
  jit = model.jit_step if jit_compile is None else jit_compile
  return evaluate_split(model, chosen, iw_samples, batch_size, seed, jit_compile=jit,
                        make_dataset=lambda n: captions.caption_eval_dataset(chosen, n))


# ----------------------------------------------------------------------------
# Pictures


def encode(text: str, length: int = captions.MAX_CAPTION_LENGTH) -> np.ndarray:
  """``int32 [length]`` token ids of a typed caption (:func:`draw_tf.data.captions.encode`, padded).

  Raises:
    CaptionError: an unknown word (the message lists the vocabulary), an empty caption, or
      more tokens than the limit (the message states it).
  """
  try:
    ids = captions.encode(text)
  except ValueError as e:
    raise CaptionError(str(e)) from None
  try:
    captions.parse(text)
  except ValueError:
    logging.warning("%r is not a caption of the training grammar (e.g. %r); drawing it anyway.", text, EXAMPLE)
  return np.pad(ids, (0, max(0, length - len(ids))))


def picture_captions(num: int = PICTURE_ROWS) -> list:
  """``[(caption, held_out)]``: ``num`` fixed captions, the second half held out of training."""
  rng = np.random.default_rng(0)
  rows = []
  for held_out, count in ((False, num - num // 2), (True, num // 2)):
    labels = captions.split_labels(held_out)
    rows += [(captions.caption_text(*labels[i]), held_out)
             for i in np.sort(rng.choice(len(labels), count, replace=False))]
  return rows


def write_caption_samples(model, samples_dir: str, eval_config, step: int):
  """Training's pictures: a row of samples for each of :func:`picture_captions`.

  Writes ``samples.png`` (and ``samples_step{step:07d}.png``), ``drawing.gif`` (the first
  sample of the first ``eval.num_gif_samples`` rows) and ``samples.txt`` (the rows' captions).

  Returns:
    ``(output, per_row)``: the :class:`~draw_tf.model.draw_model.GenerateOutput` and samples per row.
  """
  rows = picture_captions()
  per_row = max(1, eval_config.num_samples // len(rows))
  ids = np.repeat(np.stack([encode(text, model.max_caption_length) for text, _ in rows]), per_row, axis=0)
  out = model.generate(ids, seed=eval_config.sample_seed)
  for name in ("samples.png", f"samples_step{step:07d}.png"):
    visualize.save_image_grid(out.images, os.path.join(samples_dir, name), cols=per_row)
  firsts = slice(0, per_row * eval_config.num_gif_samples, per_row)
  visualize.save_drawing_gif(out.canvases[firsts], os.path.join(samples_dir, "drawing.gif"),
                             out.windows[firsts] if model.cell.write_attention else None,
                             write_size=model.cell.write_size)
  lines = [f"row {i + 1}: {text}{' (held out of training)' if held else ''}" for i, (text, held) in enumerate(rows)]
  with atomic_path(os.path.join(samples_dir, "samples.txt")) as tmp:
    with open(tmp, "w") as f:
      f.write(f"samples.png at step {step}: {len(rows)} rows of {per_row}\n" + "\n".join(lines) + "\n")
  return out, per_row


def draw_caption(source, out: str, num: int, seed: int | None, caption: str | None) -> str:
  """``draw-sample --model=WORKDIR --caption=TEXT``: ``num`` pictures of one caption in ``out``.

  ``source``: the :class:`draw_tf.runs.workdir.ModelSource` read (a workdir, or ``pretrained:NAME``).

  Returns:
    What was written, for ``draw-sample``'s last lines.

  Raises:
    UsageError: no caption; CaptionError: a caption the model cannot read.
  """
  if caption is None:
    raise UsageError(f"{source.name} holds a caption model (alignDRAW): say what to draw, e.g. "
                     f"--caption=\"{EXAMPLE}\".")
  ids = encode(caption, source.config.caption.max_caption_length)
  if num < 1:
    raise ValueError(f"--num must be >= 1, got {num}.")
  model = source.load()
  if seed is None:
    seed = random.SystemRandom().randrange(2**31)
    logging.info("Using --seed=%d", seed)
  pictures = model.generate(np.repeat(ids[None], num, axis=0), seed=seed)
  visualize.save_pictures(out, pictures.images, pictures.canvases,
                          pictures.windows if model.cell.write_attention else None, model.cell.write_size)
  logging.info("Wrote %d pictures of %r from %s to %s", num, captions.decode(ids), source.name, out)
  return f"{num} pictures of '{captions.decode(ids)}'"
