"""Resuming a run: what changed, the newest whole checkpoint, the workdir's repairs.

``draw-train`` rerun on a workdir continues where the run stopped. Before anything
is written, :func:`config_changes` compares the config with ``config.json`` and
:func:`restore` finds the newest checkpoint that reads back whole (damaged newer ones
are named and set aside by :func:`write_workdir`); a run with metrics or only damaged
checkpoints is never restarted from step 0.
"""

from __future__ import annotations

import os

from absl import logging
import tensorflow as tf

from draw_tf.errors import ConfigError, NoCheckpointError
from draw_tf.runs import checkpoints
from draw_tf.runs import workdir as workdir_lib
from draw_tf.training import metrics_log


def config_changes(config, workdir: str) -> dict:
  """The fields changed against the workdir's config.json (nothing written); a budget added or dropped is refused."""
  changes = workdir_lib.check_or_write_config(config, workdir, write=False)
  if "train.budget_minutes" in changes and 0 in [float(v or 0) for v in changes["train.budget_minutes"]]:
    old, new = changes["train.budget_minutes"]
    raise ConfigError(
        f"{workdir} holds a run trained {'by epochs' if not old else f'with a budget of {old} minutes'}; "
        f"train.budget_minutes = {new} would {'start' if not old else 'drop'} a time budget midway. "
        "Resume it as it was started (a budget may be changed, not added or removed), or train in a new "
        "--workdir.")
  return changes


def restore(config, model, checkpoint: tf.train.Checkpoint, checkpoint_dir: str, metrics_path: str) -> tuple:
  """Restores the newest checkpoint that reads back whole; returns ``(latest or None, damaged ones)``.

  A run that has metrics or only damaged checkpoints is never restarted from step 0.
  """
  latest, damaged = checkpoints.newest_good_checkpoint(checkpoint_dir)
  if latest is None and checkpoints.real(damaged):
    raise NoCheckpointError(
        f"Every checkpoint in {checkpoint_dir} is damaged ({checkpoints.describe(damaged)}). Refusing to "
        "restart this run from step 0; move the folder away to start over, or train in a new --workdir.")
  if latest is None and metrics_log.read_metrics(metrics_path):
    raise NoCheckpointError(
        f"{metrics_path} records a run but {checkpoint_dir} holds no checkpoint. Refusing to "
        "restart it from step 0; train in a new --workdir.")
  if latest:  # a checkpoint trained with other model fields (config.json edited) is named, field by field
    checkpoints.check_fits(latest, model, workdir_lib.config_to_dict(config.model),
                           lambda changes: workdir_lib.build_model(config, changes))
    checkpoint.restore(latest).assert_existing_objects_matched()
  return latest, damaged


def log_resume(config, clock, latest, step: int, steps_per_epoch: int) -> None:
  """Syncs the budget clock's progress with the restored seconds and says where the run resumes."""
  if clock is not None:
    clock.sync_progress()
  if latest and clock is not None:
    logging.info("Resumed from %s at step %d after %.2f of %.2f training minutes", latest, step,
                 clock.minutes, config.train.budget_minutes)
  elif latest:
    logging.info("Resumed from %s at step %d (epoch %d, step %d of %d)", latest, step,
                 step // steps_per_epoch + 1, step % steps_per_epoch, steps_per_epoch)


def write_workdir(config, workdir, checkpoint_dir, metrics_path, latest, damaged, step: int, changes) -> None:
  """The chief's writes once all is checked: damaged checkpoints set aside, metrics past ``step``
  dropped, changed fields recorded, config.json written."""
  os.makedirs(workdir, exist_ok=True)
  if damaged:
    checkpoints.set_aside(checkpoint_dir, damaged)
  if latest or damaged:
    # The state file lists exactly the checkpoints present (a kill between a save's files and
    # its state update leaves one unlisted, which the manager would then never rotate out).
    checkpoints.rewrite_state(checkpoint_dir)
  dropped = metrics_log.trim_metrics(metrics_path, step)
  if dropped:
    logging.warning("Dropped %d metrics.jsonl line(s) after step %d (the run resumes there).",
                    dropped, step)
  if changes:
    logging.warning("Resuming with changed training fields: %s",
                    ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))
    metrics_log.record_config_changes(metrics_path, step, changes)
  workdir_lib.check_or_write_config(config, workdir, write=True)
