"""Training library: ``train_and_evaluate(config, workdir)``.

Builds the data, the strategy, the model and the optimizer from a config
(``configs/*.py``), trains with ``model.fit`` and leaves in ``workdir``
(``docs/training.md``):

    config.json     the resolved config (a different config is refused)
    checkpoints/    model + optimizer state, every N steps and each epoch end
    tensorboard/    train/ and test/ scalars, sample and drawing images
    samples/        samples.png (prior samples) and drawing.gif (write boxes)
    metrics.jsonl   one line per epoch: step, train and test metrics

Rerunning the same command resumes from the latest checkpoint: the optimizer
state, the step counter and the position in the (deterministic) data stream,
so a run killed at any point and resumed sees the same batches and noise as
one that was not.

Example::

    from configs import mnist_quick
    from draw_tf.training import train
    model, history = train.train_and_evaluate(mnist_quick.get_config(), "/tmp/quick")

The loop reads top to bottom in :func:`_train`; its parts are named functions
here, the callbacks are in :mod:`draw_tf.training.callbacks`, the schedule and
optimizer in :mod:`draw_tf.training.optimizer` and the ``metrics.jsonl`` log in
:mod:`draw_tf.training.metrics_log`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import NamedTuple

from absl import logging
import keras
import ml_collections
import tensorflow as tf

from draw_tf import data
from draw_tf import memory
from draw_tf.errors import ConfigError, TrainingDivergedError, UsageError
from draw_tf.model import weight_average
from draw_tf.model.weight_average import WeightAverage, WeightAveraging
from draw_tf.runs import config_check
from draw_tf.runs import lock as workdir_lock
from draw_tf.runs import workdir as workdir_lib
from draw_tf.training import interrupts
from draw_tf.training import metrics_log
from draw_tf.training import resume
from draw_tf.training import strategy as strategy_lib
from draw_tf.training import tasks
from draw_tf.training import callbacks as callbacks_lib
from draw_tf.training.callbacks import (BestKeeper, BudgetClock, Checkpointer, LatentUsageReader, Reporter,
                                        Throughput)
from draw_tf.training.optimizer import make_optimizer

BEST_DIR = workdir_lib.BEST_DIR  # eval.keep_best's checkpoint and best.json


# ----------------------------------------------------------------------------
# Config and workdir


def _check_config(config) -> None:
  """Every field (type, range, choices: :mod:`draw_tf.runs.config_check`), before anything is written."""
  data.check_dataset_name(config.data.name)
  config_check.validate(config)
  keep_best = config.eval.get("keep_best", "")
  choices = tasks.get(config).LOWER_IS_BETTER
  if keep_best and keep_best not in choices:
    raise ConfigError(f"eval.keep_best = {keep_best!r} is not a metric of the {config.get('task', 'generate')} "
                      f"task where lower is better; use one of: {', '.join(choices)} (or '' for none).")


def _check_workdir(workdir) -> str:
  """The absolute workdir, refused (UsageError) when empty, a file, or not writable."""
  if not isinstance(workdir, str) or not workdir.strip():
    raise UsageError(f"--workdir is empty ({workdir!r}); name the run's folder, e.g. --workdir=runs/quick "
                     "(an empty value would train into the current folder).")
  workdir = os.path.abspath(workdir)
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if existing == workdir and not os.path.isdir(workdir):
    raise UsageError(f"--workdir={workdir} is a file, not a folder; choose another --workdir.")
  if existing != workdir and not os.path.isdir(existing):
    raise UsageError(f"--workdir={workdir}: {existing} is a file, not a folder; choose another --workdir.")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise UsageError(f"--workdir={workdir}: {existing} is not writable; make it writable or choose "
                     "another --workdir.")
  return workdir


def next_eval_command(workdir: str, config) -> str:
  """The ``draw-eval`` command for this run: the IW bound for a generative model (a
  classifier has none), of the best checkpoint where ``eval.keep_best`` kept one."""
  command = f"draw-eval --workdir={workdir}" + tasks.get(config).EVAL_FLAGS
  if config.eval.get("keep_best", ""):
    command += " --checkpoint=best"
  return command



# ----------------------------------------------------------------------------
# The training loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, callbacks=()):
  """Trains DRAW as ``config`` says, in ``workdir``, resuming if it holds a checkpoint.

  Args:
    config: a config from ``configs/`` (groups model, data, train, eval).
    workdir: output folder (see the module docstring).
    callbacks: extra Keras callbacks for ``fit``.

  Returns:
    ``(model, history)``: the trained :class:`DrawModel` and a dict of lists
    (one entry per epoch run by this call) as in ``keras.callbacks.History``.

  Raises:
    ConfigError: invalid config values, or the dataset's image shape differs
      from ``config.model.image_shape``.
    WorkdirConfigMismatchError: ``workdir`` holds a run with another config.
    DataUnavailableError: the dataset cannot be read here.
    TrainingDivergedError: the loss became NaN or Inf (the last good checkpoint
      is kept).
    WorkdirLockedError: another process is training in ``workdir``.
    CheckpointMismatchError: the checkpoint was trained with other ``config.model`` values.
    InsufficientMemoryError: the model and batch cannot fit in this machine's memory.
    DiskFullError: a checkpoint save ran out of space (the workdir stays resumable).
    StoppedByUser: Ctrl-C in a binary (:mod:`draw_tf.training.interrupts`); a checkpoint was saved.
  """
  # Everything is checked before anything is written: a rejected run leaves no
  # config.json behind to refuse the corrected command.
  _check_config(config)
  workdir = _check_workdir(workdir)
  strategy = strategy_lib.make_strategy(config.train.strategy)
  chief = strategy_lib.is_chief(strategy)
  # One writer per workdir: the chief holds the lock, the other workers of the run do not.
  with workdir_lock.hold(workdir) if chief else contextlib.nullcontext():
    return _train(config, workdir, strategy, chief, callbacks)


def _train(config, workdir: str, strategy, chief: bool, callbacks):
  """The body of :func:`train_and_evaluate`, run while holding the workdir's lock."""
  changes = resume.config_changes(config, workdir)
  logging.info("Workdir %s; strategy %s with %d replica(s)", workdir, type(strategy).__name__,
               strategy.num_replicas_in_sync)
  task = tasks.get(config)
  splits = task.load_splits(config)
  steps_per_epoch, total_steps = _count_steps(config.train, splits.train)
  _check_memory(config)
  keras.utils.set_random_seed(config.train.seed)
  run = _build(config, strategy, task, total_steps)
  checkpoint_dir = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
  metrics_path = os.path.join(workdir, metrics_log.METRICS_FILE)
  latest, damaged = resume.restore(config, run.model, run.checkpoint, checkpoint_dir, metrics_path)
  step = int(run.optimizer.iterations.numpy())
  resume.log_resume(config, run.clock, latest, step, steps_per_epoch)
  if chief:  # validated and restored: only now is the workdir written
    resume.write_workdir(config, workdir, checkpoint_dir, metrics_path, latest, damaged, step, changes)
  scratch = None if chief else tempfile.mkdtemp(prefix="draw_tf_worker_ckpt_")
  manager = tf.train.CheckpointManager(run.checkpoint, scratch or checkpoint_dir, config.train.max_checkpoints)
  _log_model(config, run, steps_per_epoch, total_steps)
  noise_shape = task.noise_shape(config, run.model)
  test_ds = task.eval_dataset(config, splits.eval, noise_shape)
  loop = _make_callbacks(config, workdir, chief, task, run, manager, splits, test_ds, scratch, callbacks)
  # With a budget an "epoch" is a segment of eval.every_minutes.
  if run.clock is not None:
    first_epoch, offset = run.clock.segments_done(), 0
  else:
    first_epoch, offset = divmod(step, steps_per_epoch)
  if latest and offset == 0 and first_epoch > 0 and not any(
      line.get("epoch") == first_epoch for line in metrics_log.read_metrics(metrics_path)):
    _recover_metrics_line(config, run, loop, test_ds, first_epoch, step)
  phases = _plan_phases(config.train, run.clock, step, total_steps, steps_per_epoch, first_epoch, offset)
  try:
    history, trained = _fit(config, chief, task, run, loop, splits.train, test_ds, noise_shape, phases)
    _finish(config, run, loop, task, test_ds, checkpoint_dir, trained, steps_per_epoch)
  finally:
    if loop.reporter is not None:
      loop.reporter.close()
    if scratch:
      shutil.rmtree(scratch, ignore_errors=True)
  return run.model, history


class _Run(NamedTuple):
  """What a run trains and checkpoints, built under the strategy's scope."""
  model: keras.Model
  optimizer: keras.optimizers.Optimizer
  clock: BudgetClock | None  # only with train.budget_minutes
  average: WeightAverage | None  # only with train.ema_decay
  averaged: dict  # the average's checkpoint entry ({} without one)
  checkpoint: tf.train.Checkpoint


class _Loop(NamedTuple):
  checkpointer: Checkpointer
  reporter: Reporter | None  # the chief's
  keeper: BestKeeper | None  # with eval.keep_best
  callbacks: list  # in the order fit runs them


def _count_steps(train_cfg, train_split) -> tuple:
  """``(steps_per_epoch, total_steps)``; a batch larger than the training split is refused."""
  if train_cfg.batch_size > train_split.num_examples:
    raise ConfigError(f"train.batch_size = {train_cfg.batch_size} is larger than the "
                      f"{train_split.num_examples} training examples.")
  steps_per_epoch = train_cfg.steps_per_epoch or train_split.num_examples // train_cfg.batch_size
  return steps_per_epoch, steps_per_epoch * train_cfg.num_epochs


def _check_memory(config) -> None:
  train_cfg = config.train
  fields = workdir_lib.config_to_dict(config.model)
  memory.check_fits(memory.training_bytes(fields, train_cfg.batch_size),
                    f"Training this model ({memory.describe_model(fields)}, train.batch_size={train_cfg.batch_size})",
                    "lower the largest of these sizes (--config.model.FIELD=...) or --config.train.batch_size")


def _build(config, strategy, task, total_steps: int) -> _Run:
  """The model, optimizer, budget clock and weight average under ``strategy``, and their checkpoint."""
  train_cfg = config.train
  budget = train_cfg.budget_minutes > 0
  with strategy.scope():
    model = task.build_model(config)
    clock = BudgetClock(train_cfg.budget_minutes, config.eval.every_minutes) if budget else None
    optimizer = make_optimizer(train_cfg, total_steps, clock.progress if budget else None)
    task.compile(model, optimizer, train_cfg)
    average = (WeightAverage(model.trainable_variables, train_cfg.ema_decay)
               if train_cfg.get("ema_decay", 0.0) else None)
  # The budget's training seconds are run state: they live in the checkpoint beside the step,
  # and so does the weight average (train.ema_decay).
  averaged = {weight_average.CHECKPOINT_KEY: average} if average is not None else {}
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **averaged,
                                   **({"train_seconds": clock.seconds} if budget else {}))
  return _Run(model, optimizer, clock, average, averaged, checkpoint)


def _log_model(config, run: _Run, steps_per_epoch: int, total_steps: int) -> None:
  train_cfg = config.train
  if run.clock is not None:
    logging.info("Model: %s; %d parameters; a budget of %g training minutes (evaluation not counted), "
                 "evaluated every %g minutes; the learning-rate decay follows the minutes",
                 json.dumps(workdir_lib.model_kwargs(config)), run.model.count_params(),
                 train_cfg.budget_minutes, run.clock.every / 60)
  else:
    logging.info("Model: %s; %d parameters; %d steps per epoch, %d epochs (%d steps)",
                 json.dumps(workdir_lib.model_kwargs(config)), run.model.count_params(), steps_per_epoch,
                 train_cfg.num_epochs, total_steps)


def _make_callbacks(config, workdir, chief, task, run: _Run, manager, splits: tasks.Splits, test_ds, scratch,
                    callbacks) -> _Loop:
  """The loop's callbacks, in the order ``fit`` runs them, each bound to the model."""
  train_cfg = config.train
  checkpointer = Checkpointer(manager, train_cfg.checkpoint_every_steps, train_cfg.max_minutes)
  reporter = (Reporter(workdir, config, checkpointer, task, splits.test, run.clock, splits.eval_name, run.average)
              if chief else None)
  keeper = None
  if config.eval.get("keep_best"):
    keeper = BestKeeper(tf.train.Checkpoint(model=run.model, **run.averaged),
                        os.path.join(scratch or workdir, BEST_DIR), config.eval.keep_best, task, splits.eval_name,
                        chief)
  # The clock runs first: the checkpoint saved at a step holds that step's training seconds.
  # The weight average is updated before the checkpointer saves a step and adds the raw
  # evaluation to the logs before the keeper and the reporter read them.
  averaging = [WeightAveraging(run.average, test_ds)] if run.average is not None else []
  all_callbacks = [*([run.clock] if run.clock is not None else []), *averaging, Throughput(train_cfg.batch_size),
                   checkpointer, interrupts.StopOnInterrupt(save=lambda: checkpointer.save("Ctrl-C")),
                   LatentUsageReader(task), *([keeper] if keeper else []), *([reporter] if reporter else []),
                   *callbacks]
  for callback in all_callbacks:
    if callback not in callbacks:
      callback.set_model(run.model)  # also used outside fit (final checkpoint, pictures)
  return _Loop(checkpointer, reporter, keeper, all_callbacks)


def _recover_metrics_line(config, run: _Run, loop: _Loop, test_ds, first_epoch: int, step: int) -> None:
  """A run killed between its epoch-end checkpoint and the metrics.jsonl line gets that line now
  (test metrics only: the epoch's training means were lost with the process)."""
  logs = {}
  if (run.clock is not None or first_epoch % config.eval.every_epochs == 0
      or first_epoch >= config.train.num_epochs):
    logs = callbacks_lib.evaluate_logs(run.model, test_ds, run.average)
    loop.checkpointer.last_test_step = step
    if loop.keeper is not None:
      loop.keeper.consider({k[len("val_"):]: v for k, v in logs.items()}, step)
  if loop.reporter is not None:
    logging.warning("metrics.jsonl has no line for epoch %d (killed after its checkpoint); "
                    "writing it from the checkpoint.", first_epoch)
    loop.reporter.record(first_epoch, logs, pictures=False, recovered=True)


def _plan_phases(train_cfg, clock, step: int, total_steps: int, steps_per_epoch: int, first_epoch: int,
                 offset: int):
  """The ``(initial_epoch, epochs, steps_per_epoch)`` of each ``fit`` left to run.

  A resumed run first finishes its interrupted epoch, then runs whole epochs. With a budget each
  segment is one fit of one epoch that the clock ends (steps_per_epoch None: the stream is endless).
  A step that crosses several marks skips their segments: a line's epoch is the last mark it passed.
  """
  phases = []
  if clock is not None:
    phases = callbacks_lib.budget_segments(clock)
    if clock.spent:
      logging.info("Already trained for the budget of %g minutes; nothing to do.", train_cfg.budget_minutes)
  elif step < total_steps:
    if offset:
      phases.append((first_epoch, first_epoch + 1, steps_per_epoch - offset))
      first_epoch += 1
    if first_epoch < train_cfg.num_epochs:
      phases.append((first_epoch, train_cfg.num_epochs, steps_per_epoch))
  else:
    logging.info("Already trained for %d steps; nothing to do.", total_steps)
  return phases


def _fit(config, chief, task, run: _Run, loop: _Loop, train_split, test_ds, noise_shape, phases) -> tuple:
  """Runs ``model.fit`` for each phase until the plan, a NaN, the time limit or the budget ends it.

  Returns ``(history, trained)``: the logs of every epoch run, and whether any phase ran.
  """
  history = {}
  trained = False
  for initial_epoch, epochs, steps in phases:
    trained = True
    start_step = int(run.optimizer.iterations.numpy())
    train_ds = task.train_dataset(config, train_split, start_step, noise_shape)
    result = run.model.fit(
        train_ds, initial_epoch=initial_epoch, epochs=epochs, steps_per_epoch=steps,
        validation_data=test_ds, validation_freq=1 if run.clock is not None else config.eval.every_epochs,
        callbacks=loop.callbacks, verbose=config.train.verbose if chief else 0, shuffle=False)
    for key, values in result.history.items():
      history.setdefault(key, []).extend(values)
    checkpointer = loop.checkpointer
    budget_spent = run.clock is not None and run.clock.spent
    if checkpointer.failed_step is not None or checkpointer.time_limit_hit or budget_spent:
      break
  return history, trained


def _finish(config, run: _Run, loop: _Loop, task, test_ds, checkpoint_dir: str, trained: bool,
            steps_per_epoch: int) -> None:
  """After the last fit: the divergence error, the final checkpoint, evaluation and pictures."""
  checkpointer, reporter, keeper = loop.checkpointer, loop.reporter, loop.keeper
  if checkpointer.failed_step is not None:
    last = tf.train.latest_checkpoint(checkpoint_dir)
    raise TrainingDivergedError(
        f"Training stopped at step {checkpointer.failed_step}: {checkpointer.failure}. "
        f"The last good checkpoint is {last or '(none)'}; nothing after it was saved. "
        "Lower --config.train.learning_rate or set a smaller --config.train.grad_clip_norm, then "
        "rerun the same command with that override (it resumes from that checkpoint and records "
        "the change in metrics.jsonl).")
  checkpointer.save("end of training")
  if checkpointer.time_limit_hit:
    logging.info("Stopped at the time limit (train.max_minutes=%s) at step %d; rerun to continue.",
                 config.train.max_minutes, int(run.optimizer.iterations.numpy()))
  final_step = int(run.optimizer.iterations.numpy())
  if trained and checkpointer.last_test_step != final_step:
    # The last epoch was not evaluated (eval.every_epochs): evaluate now (on every worker).
    logs = callbacks_lib.evaluate_logs(run.model, test_ds, run.average)
    task.read_latent_usage(run.model)
    if keeper is not None:
      keeper.consider({k[len("val_"):]: v for k, v in logs.items()}, final_step)
    if reporter is not None:
      epoch = run.clock.segments_done() if run.clock is not None else -(-final_step // steps_per_epoch)
      reporter.record(epoch, logs, pictures=False)
  if reporter is not None and reporter.last_picture_step != final_step:
    reporter.pictures(final_step)
