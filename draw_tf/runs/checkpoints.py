"""Finding the newest checkpoint of a workdir that is whole, skipping damaged ones.

A checkpoint ``checkpoints/ckpt-N`` is an ``.index`` file and its
``.data-*`` shards. A run killed while saving, a full disk or a truncated copy
leaves one that cannot be restored; :func:`newest_good_checkpoint` reads every
tensor of each candidate, newest first, names the damaged ones in the log and
returns the newest good one. Training also moves damaged checkpoints aside
(:func:`set_aside`, into ``checkpoints/damaged/``; nothing is deleted) so the
checkpoint manager never counts or restores them.

Checkpoints are found by their files, not only by TensorFlow's ``checkpoint``
state file, so a state file that names a deleted checkpoint does not hide the
older ones.

:func:`save` saves through a ``CheckpointManager``; a full disk becomes one
line naming the folder and the bytes needed (:mod:`draw_tf.disk_space`), and
the unfinished files of that save are removed, so the workdir stays resumable
from the previous checkpoint.

Example::

    path, damaged = checkpoints.newest_good_checkpoint("/tmp/run/checkpoints")
"""

from __future__ import annotations

import glob
import math
import os
import re
import shutil

import tensorflow as tf
from absl import logging

from draw_tf import disk_space
from draw_tf.errors import CheckpointMismatchError

DAMAGED_DIR = "damaged"
# A save killed before any file of the checkpoint itself existed: not a checkpoint.
UNFINISHED = "an unfinished save (only a _temp folder)"
_NAME = re.compile(r"^(ckpt-(\d+))(\.index|\.data-\d+-of-\d+|_temp.*)$")


def candidates(checkpoint_dir: str) -> list:
  """``[(step, prefix, [files])]`` of every checkpoint-like file set, newest first."""
  found = {}
  for path in glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*")):
    match = _NAME.match(os.path.basename(path))
    if match:
      prefix = os.path.join(checkpoint_dir, match.group(1))
      found.setdefault((int(match.group(2)), prefix), []).append(path)
  return [(step, prefix, sorted(files)) for (step, prefix), files in
          sorted(found.items(), reverse=True)]


def problem(prefix: str, files=None) -> str | None:
  """What is wrong with the checkpoint ``prefix`` (None when every tensor reads back)."""
  files = files if files is not None else glob.glob(glob.escape(prefix) + "*")
  names = [os.path.basename(f) for f in files]
  base = os.path.basename(prefix)
  if all("_temp" in n for n in names):
    return UNFINISHED
  if f"{base}.index" not in names:
    return "no .index file"
  if not any(n.startswith(f"{base}.data-") for n in names):
    return "no .data file"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_dtype_map():
      reader.get_tensor(key)
  except Exception as e:  # pylint: disable=broad-except  (DataLossError, IndexError, ...)
    return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
  return None


def newest_good_checkpoint(checkpoint_dir: str) -> tuple:
  """The newest checkpoint that reads back whole, and the damaged ones newer than it.

  Returns:
    ``(prefix or None, damaged)``, where ``damaged`` is a list of
    ``(prefix, [files], what is wrong)`` for every damaged checkpoint seen
    before the good one (newest first). Each is named in a warning.
  """
  damaged = []
  for _, prefix, files in candidates(checkpoint_dir):
    what = problem(prefix, files)
    if what is None:
      if damaged:
        logging.warning("Using %s, the newest good checkpoint in %s.", prefix, checkpoint_dir)
      return prefix, damaged
    logging.warning("Skipping damaged checkpoint %s: %s (files: %s).", prefix, what,
                    ", ".join(os.path.basename(f) for f in files))
    damaged.append((prefix, files, what))
  return None, damaged


def real(damaged: list) -> list:
  """The damaged entries that were checkpoints (not just an unfinished save's _temp folder)."""
  return [d for d in damaged if d[2] != UNFINISHED]


def describe(damaged: list) -> str:
  """``"ckpt-12: no .index file; ckpt-10: unreadable (...)"``: the damaged checkpoints, for a message."""
  return "; ".join(f"{os.path.basename(prefix)}: {what}" for prefix, _, what in damaged)


def set_aside(checkpoint_dir: str, damaged: list) -> list:
  """Moves damaged checkpoints' files into ``checkpoint_dir/damaged/`` (never deletes).

  Returns the new paths. A file of the same name already set aside gets a suffix.
  """
  target = os.path.join(checkpoint_dir, DAMAGED_DIR)
  moved = []
  for _, files, _ in damaged:
    for path in files:
      os.makedirs(target, exist_ok=True)
      dest = os.path.join(target, os.path.basename(path))
      n = 1
      while os.path.exists(dest):
        dest = os.path.join(target, f"{os.path.basename(path)}.{n}")
        n += 1
      os.replace(path, dest)
      moved.append(dest)
      logging.warning("Moved %s to %s.", path, dest)
  return moved


def rewrite_state(checkpoint_dir: str) -> None:
  """Makes TensorFlow's ``checkpoint`` state file list exactly the checkpoints present."""
  prefixes = [prefix for _, prefix, files in reversed(candidates(checkpoint_dir))
              if any(f.endswith(".index") for f in files)]
  if prefixes:
    tf.compat.v1.train.update_checkpoint_state(
        checkpoint_dir, prefixes[-1], all_model_checkpoint_paths=prefixes)
  elif os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
    os.remove(os.path.join(checkpoint_dir, "checkpoint"))


def _files_of(checkpoint_dir: str, step: int) -> set:
  return set(glob.glob(os.path.join(glob.escape(checkpoint_dir), f"ckpt-{step}[._]*")))


def save(manager: tf.train.CheckpointManager, step: int, variables=()) -> str:
  """``manager.save(checkpoint_number=step)``; a full disk is one :class:`DiskFullError` line.

  On any failure the files this save created (``ckpt-N_temp``, a partial
  ``ckpt-N.index``) are removed; older checkpoints are untouched.

  Args:
    manager: the run's checkpoint manager.
    step: the checkpoint number.
    variables: what the checkpoint holds, for the bytes needed when nothing
      was saved before (else the newest checkpoint's size is the estimate).

  Returns:
    The saved checkpoint's path prefix.
  """
  directory = manager.directory
  before = _files_of(directory, step)

  def needed() -> int:
    for _, _, files in candidates(directory):
      if any(f.endswith(".index") for f in files):
        return sum(os.path.getsize(f) for f in files if os.path.isfile(f))
    return disk_space.variables_bytes(variables)

  previous = manager.latest_checkpoint
  then = ("free space there (or move the workdir elsewhere) and rerun the same command: it resumes from "
          f"{os.path.basename(previous) if previous else 'the start'}")
  with disk_space.named_if_full(directory, needed, f"checkpoint ckpt-{step}", then):
    try:
      return manager.save(checkpoint_number=step)
    except BaseException:
      for path in _files_of(directory, step) - before:
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
      raise


# ----------------------------------------------------------------------------
# A checkpoint that does not fit the model config.json describes


def variable_shapes(prefix: str, root: str = "model") -> dict:
  """``{"cell/encoder/kernel": [40, 64], ...}``: each variable under ``root`` in the checkpoint's object graph."""
  from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
  start = [c.node_id for c in graph.nodes[0].children if c.local_name == root]
  found, stack, seen = {}, [(n, []) for n in start], set(start)
  while stack:
    node, path = stack.pop()
    for attribute in graph.nodes[node].attributes:
      if attribute.name == "VARIABLE_VALUE" and attribute.checkpoint_key in shapes:
        found["/".join(path)] = list(shapes[attribute.checkpoint_key])
    for child in graph.nodes[node].children:
      if child.node_id not in seen and not (not path and child.local_name == "optimizer"):  # the model's own
        seen.add(child.node_id)
        stack.append((child.node_id, path + [child.local_name]))
  return found


def _shape_in(model, path: str):
  """The shape of the variable at ``path`` (attribute names) in ``model``, or None if it has none there."""
  obj = model
  for name in path.split("/"):
    if isinstance(obj, (list, tuple)) and name.isdigit() and int(name) < len(obj):
      obj = obj[int(name)]
    else:
      obj = getattr(obj, name, None)
    if obj is None:
      return None
  return list(obj.shape) if hasattr(obj, "shape") else None


def _misfits(wanted: dict, model) -> dict:
  return {p: (s, _shape_in(model, p)) for p, s in wanted.items() if _shape_in(model, p) != s}


def _solve(field, value, wanted, misfit, build, probes):
  """The value of the integer ``field`` that makes the misfit variables fit (None if no such value).

  Each dimension is a polynomial of degree <= 2 in one field (``read_size`` enters squared), so
  the ``probes``, models built at ``value + 1`` and ``value + 2``, give it; the root is checked by
  one more build.
  """
  guesses = set()
  for path, (target, mine) in misfit.items():
    if mine is None or len(mine) != len(target):
      continue
    s1, s2 = _shape_in(probes[0], path), _shape_in(probes[1], path)
    for d0, d1, d2, t in zip(mine, s1 or mine, s2 or mine, target):
      a2 = d2 - 2 * d1 + d0  # 2a
      b = (d1 - d0) - a2 * (2 * value + 1) / 2.0
      c = d0 - a2 / 2.0 * value * value - b * value
      if a2 == 0 and b == 0:
        continue
      roots = ([(t - c) / b] if a2 == 0 else
               [(-b + sign * math.sqrt(max(b * b - 2 * a2 * (c - t), 0.0))) / a2 for sign in (1, -1)])
      guesses |= {int(round(r)) for r in roots if r > 0.5 and abs(r - round(r)) < 1e-6}
  for guess in sorted(guesses):
    if guess != value and not _misfits({p: wanted[p] for p in misfit}, build({field: guess})):
      return guess
  return None


def check_fits(prefix: str, model, model_config: dict, build) -> None:
  """Raises :class:`CheckpointMismatchError` when ``prefix``'s variables do not fit ``model``.

  The message names each ``model.*`` field of the config whose value differs from the one the
  checkpoint was trained with (found by building the model with other values of each integer
  field), or else the first variable whose shapes disagree.

  Args:
    prefix: a checkpoint written with ``tf.train.Checkpoint(model=...)``.
    model: the model built from ``model_config``.
    model_config: the ``config.model`` fields (a dict) the model was built from.
    build: ``fn(overrides: dict) -> model`` building a model with some fields replaced.
  """
  wanted = variable_shapes(prefix)
  misfit = _misfits(wanted, model)
  if not misfit:
    return
  fields = {}
  for field, value in model_config.items():
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
      probe = build({field: value + 1})
      related = {p: m for p, m in misfit.items() if m[1] is not None and _shape_in(probe, p) != m[1]}
      if related:
        guess = _solve(field, value, wanted, related, build, [probe, build({field: value + 2})])
        if guess is not None:
          fields[field] = (value, guess)
  if fields:
    what = "; ".join(f"model.{f} is {a} in config.json but {b} in the checkpoint" for f, (a, b) in fields.items())
    fix = " ".join(f"--config.model.{f}={b}" for f, (_, b) in fields.items())
  else:
    path, (theirs, mine) = next(iter(misfit.items()))
    what = (f"variable {path} has shape {theirs} in the checkpoint but "
            f"{mine if mine is not None else 'does not exist'} in the model config.json describes")
    fix = "the config the run was trained with"
  raise CheckpointMismatchError(
      f"{prefix} does not fit the model config.json describes: {what}. Put back the value the run was "
      f"trained with in config.json ({fix}), or train in a new --workdir.")
