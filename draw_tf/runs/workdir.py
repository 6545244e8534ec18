"""A training workdir on disk: its resolved config, its checkpoints and its model.

``draw-train`` writes ``config.json`` (the resolved config) and
``checkpoints/`` into a workdir (``docs/training.md``); every other
program (``draw-eval``, ``draw-export``, ``draw-sample``, ``draw-compress``, the
tools) reads them back through this module:

* :func:`check_or_write_config` writes ``config.json``, or on resume compares
  it with the new config: :data:`RUN_CONTROL_FIELDS` and
  :data:`RESUMABLE_CHANGES` (:mod:`draw_tf.runs.config_check`) may differ, a field in
  :data:`ADDED_FIELDS` that an older workdir lacks counts as its old value, any
  other difference is refused.
* :func:`load_config` and :func:`is_classifier` read the run's config.
* :func:`latest_checkpoint` is the newest checkpoint that reads back whole
  (damaged ones are skipped and named: :mod:`draw_tf.runs.checkpoints`).
* :func:`build_model` builds the model of the run's task (:data:`draw_tf.model.registry.MODELS`) and
  :func:`load_model_from_workdir` restores it; :func:`source` is a workdir as a :class:`ModelSource`
  (what ``draw-sample`` reads; ``draw_tf.pretrained.source`` is a shipped model as one).

Example::

    model = workdir.load_model_from_workdir("/tmp/quick")
    step = int(workdir.latest_checkpoint("/tmp/quick").rsplit("-", 1)[-1])
"""

from __future__ import annotations

import json
import os
from typing import Callable, NamedTuple

import ml_collections
from absl import logging
import tensorflow as tf

from draw_tf.data import caption_grammar
from draw_tf.runs import checkpoints
from draw_tf.runs import config_check
from draw_tf import memory
from draw_tf.model import registry
from draw_tf.model import weight_average
from draw_tf.model.classifier import DrawClassifier
from draw_tf.errors import ConfigError, NoCheckpointError, WorkdirConfigMismatchError
from draw_tf.fileio import write_json

# Which weights a reader restores (load_model_from_workdir): the run's moving average if it kept one, or as trained.
WEIGHTS = ("average", "raw")
BEST_DIR = "best"  # draw_tf.training.callbacks.BestKeeper's folder (eval.keep_best)
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
# What may change on resume, and what older workdirs meant: read from config_check.SCHEMA.
RUN_CONTROL_FIELDS = config_check.RUN_CONTROL_FIELDS
RESUMABLE_CHANGES = config_check.RESUMABLE_CHANGES
ADDED_FIELDS = config_check.ADDED_FIELDS


# ----------------------------------------------------------------------------
# config.json


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON types (tuples become lists)."""
  return json.loads(config.to_json())


def read_config_json(path: str) -> dict:
  """The config a workdir holds; a damaged ``config.json`` is a one-line ConfigError."""
  try:
    with open(path) as f:
      old = json.load(f)
  except ValueError as e:  # json.JSONDecodeError
    raise ConfigError(
        f"{path} is damaged ({e}); it should hold the run's resolved config. Restore it from a "
        "copy, or train in a new --workdir.") from None
  if not isinstance(old, dict):
    raise ConfigError(f"{path} holds no config (a JSON {type(old).__name__}); restore it or use a new --workdir.")
  return old


def check_or_write_config(config: ml_collections.ConfigDict, workdir: str, write: bool = True) -> dict:
  """Writes ``workdir/config.json``, or checks it equals ``config`` on resume.

  Fields in :data:`RUN_CONTROL_FIELDS` may differ silently and those in
  :data:`RESUMABLE_CHANGES` (training-only: learning rate, clip norm, epochs...)
  may differ too; the new values are written.

  Returns:
    ``{field: [old, new]}`` of the resumable fields that changed (empty for a new run).

  Raises:
    WorkdirConfigMismatchError: the workdir holds a run with another config.
    ConfigError: ``config.json`` is damaged.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  changes = {}
  if os.path.exists(path):
    old = read_config_json(path)
    old_flat, new_flat = config_check.flatten(old), config_check.flatten(new)
    old_flat = {**{k: v for k, v in ADDED_FIELDS.items() if k in new_flat}, **old_flat}
    diffs = [k for k in sorted(set(old_flat) | set(new_flat))
             if k not in RUN_CONTROL_FIELDS and old_flat.get(k, "<missing>") != new_flat.get(k, "<missing>")]
    refused = [k for k in diffs if k not in RESUMABLE_CHANGES]
    if refused:
      lines = "\n".join(f"  {k}: {old_flat.get(k, '<missing>')!r} in the workdir, "
                        f"{new_flat.get(k, '<missing>')!r} now" for k in refused)
      raise WorkdirConfigMismatchError(
          f"{workdir} holds a run with a different config ({path}):\n{lines}\n"
          "Resume it with the same config and overrides, or train in a new --workdir. "
          f"Only these fields may change on resume: {', '.join(RESUMABLE_CHANGES + RUN_CONTROL_FIELDS)}.")
    changes = {k: [old_flat.get(k), new_flat.get(k)] for k in diffs}
  if write:
    write_json(path, new)
  return changes


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to ``workdir/config.json``.

  Raises:
    NoCheckpointError: ``workdir`` holds no training run.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise NoCheckpointError(
        f"{workdir} is not a training workdir (no config.json). Train one first: "
        f"draw-train --config=configs/mnist_quick.py --workdir={workdir}")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (ValueError, AttributeError, TypeError) as e:  # JSONDecodeError; not a JSON object
    raise ConfigError(
        f"{path} is damaged ({type(e).__name__}: {e}); it should hold the run's resolved config. "
        "Restore it from a copy, or train in a new --workdir.") from None


def is_classifier(config) -> bool:
  """Whether a resolved config trains a :class:`DrawClassifier` (``task = "classify"``)."""
  return issubclass(registry.model_class(registry.task_of(config)), DrawClassifier)


# ----------------------------------------------------------------------------
# Checkpoints and the model


def caption_encoding() -> dict:
  """How a caption run's captions become token ids (:func:`draw_tf.data.caption_grammar.encoding`).

  A caption model's export carries it (``draw_tf.export``, which does not read the data layer).
  """
  return caption_grammar.encoding()


def latest_checkpoint(workdir: str) -> str:
  """Path prefix of the newest good checkpoint in ``workdir/checkpoints``.

  Damaged checkpoints (unreadable, half-written) are skipped and named in the log
  (:mod:`draw_tf.runs.checkpoints`).

  Raises:
    NoCheckpointError: there is none, or every one is damaged.
  """
  checkpoint_dir = os.path.join(workdir, CHECKPOINT_DIR)
  path, damaged = checkpoints.newest_good_checkpoint(checkpoint_dir)
  if path is None and checkpoints.real(damaged):
    raise NoCheckpointError(f"Every checkpoint in {checkpoint_dir} is damaged: {checkpoints.describe(damaged)}.")
  if path is None:
    raise NoCheckpointError(
        f"No checkpoint in {checkpoint_dir}. Train first "
        f"(draw-train --config=CONFIG --workdir={workdir}); a run saves every "
        "train.checkpoint_every_steps steps and at each epoch end.")
  return path


def best_checkpoint(workdir: str) -> str:
  """Path prefix of the checkpoint ``eval.keep_best`` kept in ``workdir/best/``.

  Raises:
    NoCheckpointError: the run kept none (``eval.keep_best`` was empty, or no evaluation yet), or the
      one it kept is damaged.
  """
  path = tf.train.latest_checkpoint(os.path.join(workdir, BEST_DIR))
  if path is None:
    raise NoCheckpointError(
        f"{workdir} keeps no best checkpoint (no {os.path.join(workdir, BEST_DIR)}/ checkpoint): train with "
        "--config.eval.keep_best=METRIC (e.g. error_percent, nll_bound); it is saved at the first evaluation.")
  what = checkpoints.problem(path)
  if what is not None:
    raise NoCheckpointError(
        f"The best checkpoint {path} is damaged: {what}. Evaluate another one (--checkpoint=latest, or a "
        f"prefix in {os.path.join(workdir, CHECKPOINT_DIR)}/), or restore {os.path.join(workdir, BEST_DIR)}/ "
        "from a copy.")
  return path


def resolve_checkpoint(workdir: str, which: str = "latest") -> str:
  """``"latest"`` (:func:`latest_checkpoint`), ``"best"`` (:func:`best_checkpoint`) or a checkpoint path."""
  if which == "latest":
    return latest_checkpoint(workdir)
  if which == "best":
    return best_checkpoint(workdir)
  if not tf.io.gfile.exists(which + ".index"):
    raise NoCheckpointError(f"No checkpoint {which!r} (no {which}.index); pass latest, best or a "
                            f"checkpoint prefix such as {os.path.join(workdir, CHECKPOINT_DIR, 'ckpt-500')}.")
  what = checkpoints.problem(which)
  if what is not None:
    raise NoCheckpointError(f"The checkpoint {which} is damaged: {what}. Pass --checkpoint=latest (the newest "
                            "good one) or another checkpoint prefix.")
  return which


def checkpoint_step(checkpoint: str) -> int:
  """The training step a checkpoint ``.../ckpt-N`` was saved at (``N``)."""
  return int(os.path.basename(checkpoint).rsplit("-", 1)[-1])


def model_kwargs(config, changes=None) -> dict:
  """The keyword arguments of the config's model (:data:`draw_tf.model.registry.MODELS`), ``changes`` to ``config.model`` applied.

  ``config.model`` for DRAW and the classifier; ``config.model`` and ``config.caption`` for alignDRAW.
  """
  fields = {}
  for group in registry.config_groups(registry.task_of(config)):
    fields.update(config_to_dict(config[group]))
  return {**fields, **(changes or {})}


def build_model(config, changes=None, **kwargs):
  """The (unrestored) model a resolved config describes, with ``changes`` to ``config.model`` applied.

  ``kwargs`` (e.g. ``dtype``) go to the constructor as they are.
  """
  return registry.model_class(registry.task_of(config))(**model_kwargs(config, changes), **kwargs)


def load_model_from_workdir(workdir: str, checkpoint: str | None = None, weights: str = "average"):
  """Builds the model of a training workdir and restores its latest checkpoint.

  Returns:
    The model of the run's task (:data:`draw_tf.model.registry.MODELS`: :class:`DrawModel`, :class:`DrawClassifier`
    or :class:`AlignDrawModel`) with the latest checkpoint's weights (not compiled).

  Args:
    workdir: a folder written by ``draw-train``.
    checkpoint: the checkpoint to restore (default: :func:`latest_checkpoint`).
    weights: ``"average"``: the moving average of the weights when the run kept
      one (``train.ema_decay``; :mod:`draw_tf.model.weight_average`), else the weights;
      ``"raw"``: the weights as the optimizer left them.

  Raises:
    NoCheckpointError: no ``config.json`` or no good checkpoint in ``workdir``.
    CheckpointMismatchError: the checkpoint was trained with other ``config.model`` values
      (the message names the field).
  """
  config = load_config(workdir)
  path = checkpoint or latest_checkpoint(workdir)
  if weights not in WEIGHTS:
    raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
  fields = config_to_dict(config.model)
  memory.check_fits(memory.FLOAT_BYTES * memory.parameter_count(fields), f"The model of {workdir} ({memory.describe_model(fields)})",
                    "use a machine with more memory")
  model = build_model(config)
  checkpoints.check_fits(path, model, config_to_dict(config.model), lambda changes: build_model(config, changes))
  tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
  if weights == "average" and weight_average.restore_average(model, path):
    logging.info("Restored the moving average of the weights (train.ema_decay) from %s", path)
  return model


class ModelSource(NamedTuple):
  """A model a command reads: a training workdir (:func:`source`) or a shipped one (``draw_tf.pretrained.source``).

  ``load()`` gives the model, uncompiled (a workdir's newest good checkpoint).
  """
  name: str  # as the user wrote it: the workdir, or pretrained:NAME
  config: ml_collections.ConfigDict  # the resolved training config
  load: Callable


def source(workdir: str) -> ModelSource:
  """``workdir`` as a :class:`ModelSource`: its config now, its newest good checkpoint on ``load()``."""
  return ModelSource(workdir, load_config(workdir), lambda: load_model_from_workdir(workdir))
