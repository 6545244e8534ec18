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
    model, history = train_lib.train_and_evaluate(mnist_quick.get_config(), "/tmp/quick")
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from draw_tf.runs import checkpoints
from draw_tf.runs import config_check
from draw_tf import data
from draw_tf.model import diagnostics
from draw_tf.training import interrupts
from draw_tf import memory
from draw_tf.training import tasks
from draw_tf.runs import workdir as workdir_lib
from draw_tf.model import weight_average
from draw_tf.model.weight_average import WeightAverage, WeightAveraging
from draw_tf.runs import lock as workdir_lock
from draw_tf.errors import ConfigError, NoCheckpointError, TrainingDivergedError, UsageError
from draw_tf.fileio import atomic_path, write_json

METRICS_FILE = "metrics.jsonl"
BEST_DIR = workdir_lib.BEST_DIR  # eval.keep_best's checkpoint and best.json
BEST_FILE = "best.json"
STRATEGIES = ("auto", "mirrored", "multi_worker_mirrored", "one_device")
LR_SCHEDULES = ("constant", "cosine", "exponential")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


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


# ----------------------------------------------------------------------------
# Strategy and optimizer


def make_strategy(name: str) -> tf.distribute.Strategy:
  """Returns the ``tf.distribute`` strategy named by ``config.train.strategy``.

  ``auto``: ``MirroredStrategy`` over all GPUs when more than one is visible,
  else the default strategy. ``mirrored``: ``MirroredStrategy`` over the GPUs,
  or over the logical CPUs when there is no GPU. ``multi_worker_mirrored``:
  ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG`` (create it
  before any other TensorFlow work in the process). ``one_device``: the first
  GPU, else the CPU.
  """
  if name == "multi_worker_mirrored":
    # Must come before anything initialises the TensorFlow runtime (even listing devices).
    if "TF_CONFIG" not in os.environ:
      logging.warning("train.strategy=multi_worker_mirrored without TF_CONFIG: one worker.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices("GPU")
  if name == "auto":
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
  if name == "mirrored":
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  raise ConfigError(f"Unknown train.strategy {name!r}; valid: {', '.join(STRATEGIES)}.")


def _is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


@keras.saving.register_keras_serializable(package="draw_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to ``peak``, then constant, cosine or exponential decay.

  Decay runs from the end of warm-up to ``total_steps``, ending at
  ``peak * final_fraction``. With ``progress`` (a scalar variable in [0, 1],
  the fraction of a time budget spent: :class:`BudgetClock`) the decay follows
  it instead of the step, so a run with ``train.budget_minutes`` ends its
  decay when its minutes end; the warm-up still counts steps.
  """

  def __init__(self, peak, total_steps, warmup_steps=0, kind="constant", final_fraction=0.1,
               progress=None):
    self.peak = float(peak)
    self.total_steps = int(total_steps)
    self.warmup_steps = int(warmup_steps)
    self.kind = kind
    self.final_fraction = float(final_fraction)
    self.progress = progress

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = float(max(self.warmup_steps, 0))
    if self.progress is not None:
      progress = tf.clip_by_value(tf.cast(self.progress, tf.float32), 0.0, 1.0)
    else:
      progress = tf.clip_by_value(
          (step - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
    if self.kind == "cosine":
      factor = self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + tf.cos(math.pi * progress))
    elif self.kind == "exponential":
      factor = tf.pow(self.final_fraction, progress)
    else:
      factor = tf.constant(1.0)
    if warmup > 0:
      factor = tf.where(step < warmup, (step + 1) / warmup, factor)
    return self.peak * factor

  def get_config(self):
    # ``progress`` is run state (it lives in the checkpoint), not configuration.
    return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "kind": self.kind, "final_fraction": self.final_fraction}


def make_optimizer(train_config, total_steps: int, progress=None) -> keras.optimizers.Optimizer:
  """Adam with the config's learning-rate schedule and global-norm clipping.

  ``progress``: the budget fraction variable of :class:`BudgetClock` when the
  run has ``train.budget_minutes`` (the decay then follows minutes, not steps).
  """
  schedule = WarmupDecay(train_config.learning_rate, total_steps, train_config.warmup_steps,
                         train_config.lr_schedule, train_config.final_lr_fraction, progress)
  return keras.optimizers.Adam(
      learning_rate=schedule, beta_1=train_config.adam_beta1, beta_2=train_config.adam_beta2,
      global_clipnorm=train_config.grad_clip_norm or None)


class BudgetClock(keras.callbacks.Callback):
  """Training time of a run with ``train.budget_minutes``, kept across resumed invocations.

  ``seconds`` (a float64 variable saved in the checkpoint) adds up the wall
  time of every training step: from the start of each segment of ``fit`` to
  each step's end, so data waits, tracing and checkpoint saves count, and
  evaluation and pictures (run between segments) do not. ``progress`` is
  ``seconds / budget`` for the learning-rate decay. A segment (one Keras
  epoch, one ``metrics.jsonl`` line) ends at the next multiple of
  ``every_minutes`` or at the budget, whichever comes first.

  Create it under the strategy's scope (its variables are mirrored there).
  """

  def __init__(self, budget_minutes: float, every_minutes: float = 0.0):
    super().__init__()
    self.budget = 60.0 * float(budget_minutes)
    self.every = 60.0 * float(every_minutes) if every_minutes > 0 else self.budget
    self.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    self.progress = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="budget_progress")
    self._last = None
    self._deadline = None

  @property
  def minutes(self) -> float:
    return float(self.seconds.numpy()) / 60.0

  @property
  def spent(self) -> bool:
    return float(self.seconds.numpy()) >= self.budget

  def segments_done(self) -> int:
    """Whole segments trained (a float's rounding never drops one)."""
    seconds = float(self.seconds.numpy())
    if seconds >= self.budget:
      return self.num_segments()
    return int(math.floor(seconds / self.every + 1e-9))

  def num_segments(self) -> int:
    return int(math.ceil(self.budget / self.every - 1e-9))

  def sync_progress(self) -> None:
    self.progress.assign(min(float(self.seconds.numpy()) / self.budget, 1.0))

  def on_epoch_begin(self, epoch, logs=None):
    self._last = time.perf_counter()
    self._deadline = min((self.segments_done() + 1) * self.every, self.budget)
    self.sync_progress()

  def on_train_batch_end(self, batch, logs=None):
    now = time.perf_counter()
    seconds = float(self.seconds.numpy()) + now - self._last
    self._last = now
    self.seconds.assign(seconds)
    self.progress.assign(min(seconds / self.budget, 1.0))
    if seconds >= self._deadline:
      self.model.stop_training = True


# ----------------------------------------------------------------------------
# metrics.jsonl: one line per epoch (plus one per resume with changed fields),
# always rewritten atomically.


def read_metrics(path: str) -> list:
  """The lines of ``metrics.jsonl`` as dicts (a line cut short by a kill is skipped)."""
  if not os.path.exists(path):
    return []
  lines = []
  with open(path) as f:
    for text in f:
      try:
        line = json.loads(text)
      except ValueError:
        continue
      if isinstance(line, dict):
        lines.append(line)
  return lines


def metric_rows(metrics_path: str, key: str) -> list:
  """The evaluation lines of ``metrics_path`` that hold ``key``, oldest first.

  Returns:
    A list of ``{"minutes", "step", "value"}``; ``minutes`` is ``train_minutes`` (a budget
    run: evaluation not counted) where the line has it, else the wall ``minutes``.
  """
  rows = []
  for line in read_metrics(metrics_path):
    if key not in line:
      continue
    minutes = line.get("train_minutes", line.get("minutes"))
    rows.append({"minutes": minutes, "step": line["step"], "value": float(line[key])})
  return rows


def best_and_fallback(values: list, lower_is_better: bool = True):
  """Index of the best value and the largest fall-back from it in any later value.

  Args:
    values: the metric at each evaluation, in order.
    lower_is_better: whether lower values are better.

  Returns:
    ``(best_index, fallback)``: the first index holding the best value, and
    ``max(later - best)`` (``max(best - later)`` when higher is better), 0 when nothing
    follows the best.
  """
  if not values:
    raise ValueError("best_and_fallback needs at least one value.")
  sign = 1.0 if lower_is_better else -1.0
  best = min(range(len(values)), key=lambda i: (sign * values[i], i))
  later = [sign * (v - values[best]) for v in values[best + 1:]]
  return best, max(later, default=0.0)


def next_eval_command(workdir: str, config) -> str:
  """The ``draw-eval`` command for this run: the IW bound for a generative model (a
  classifier has none), of the best checkpoint where ``eval.keep_best`` kept one."""
  command = f"draw-eval --workdir={workdir}"
  if config.get("task", "generate") == "generate":
    command += " --iw_samples=100"
  if config.eval.get("keep_best", ""):
    command += " --checkpoint=best"
  return command


def _write_metrics(path: str, lines: list) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      for line in lines:
        f.write(json.dumps(line) + "\n")


def write_metrics_line(path: str, line: dict) -> None:
  """Adds an epoch's line, merged into an existing line of the same epoch."""
  lines = read_metrics(path)
  for i, old in enumerate(lines):
    if "epoch" in old and old.get("epoch") == line["epoch"]:
      lines[i] = {**old, **line}
      break
  else:
    lines.append(line)
  _write_metrics(path, lines)


def trim_metrics(path: str, step: int) -> int:
  """Drops epoch lines after ``step`` (and half-written lines); returns how many went."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    count = sum(1 for text in f if text.strip())
  lines = read_metrics(path)
  kept = [l for l in lines if "epoch" not in l or l.get("step", 0) <= step]
  if len(kept) != count:
    _write_metrics(path, kept)
  return count - len(kept)


def record_config_changes(path: str, step: int, changes: dict) -> None:
  """Adds ``{"step", "config_changes": {field: [old, new]}}`` (once per resume)."""
  lines = read_metrics(path)
  entry = {"step": step, "config_changes": changes, "time": round(time.time(), 1)}
  if lines and lines[-1].get("config_changes") == changes and lines[-1].get("step") == step:
    return
  _write_metrics(path, lines + [entry])


# ----------------------------------------------------------------------------
# Callbacks


class Throughput(keras.callbacks.Callback):
  """Adds ``images/s`` (since the epoch's first step finished) to the logs."""

  def __init__(self, batch_size: int):
    super().__init__()
    self.batch_size = batch_size
    self._start = None
    self._seen = 0
    self.rate = float("nan")

  def on_epoch_begin(self, epoch, logs=None):
    self._start, self._seen = None, 0

  def on_train_batch_end(self, batch, logs=None):
    now = time.perf_counter()
    if self._start is None:
      self._start = now  # the first step includes tracing
    else:
      self._seen += 1
      self.rate = self._seen * self.batch_size / max(now - self._start, 1e-9)
    if logs is not None and self._seen:
      logs["images/s"] = self.rate

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and self._seen:
      logs["images/s"] = self.rate


class StepCallback(keras.callbacks.Callback):
  """A callback that reads the optimizer's step (the number of steps trained)."""

  @property
  def step(self) -> int:
    return int(self.model.optimizer.iterations.numpy())


class Checkpointer(StepCallback):
  """Checkpoints, stops on NaN/Inf, and stops at a time limit.

  Saves every ``every_steps`` steps and at each epoch end, only when the loss
  and every weight are finite. A NaN or Inf stops training without saving, so
  the latest checkpoint is the last good one.
  """

  def __init__(self, manager: tf.train.CheckpointManager, every_steps: int, max_minutes: float = 0.0):
    super().__init__()
    self.manager = manager
    self.every_steps = every_steps
    self.deadline = time.time() + 60 * max_minutes if max_minutes > 0 else None
    self.last_saved = None
    self.failed_step = None
    self.failure = None
    self.time_limit_hit = False
    self.last_test_step = None

  def _weights_finite(self) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(v.value))) for v in self.model.trainable_variables)

  def save(self, reason: str) -> str | None:
    """Saves the step (once) if every weight is finite; returns the newest checkpoint's path."""
    if self.failed_step is not None:
      return self.manager.latest_checkpoint
    step = self.step
    if step == self.last_saved:
      return self.manager.latest_checkpoint
    if not self._weights_finite():
      self._fail(step, "a weight became NaN or Inf")
      return self.manager.latest_checkpoint
    path = checkpoints.save(self.manager, step, self.model.variables + self.model.optimizer.variables)
    self.last_saved = step
    logging.info("Saved checkpoint %s (%s)", path, reason)
    return path

  def _fail(self, step: int, what: str) -> None:
    self.failed_step, self.failure = step, what
    self.model.stop_training = True

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(loss):
      self._fail(self.step, f"the loss became {loss}")
      return
    if self.step % self.every_steps == 0:
      self.save("every %d steps" % self.every_steps)
    self._check_deadline()

  def _check_deadline(self):
    if self.deadline is not None and time.time() > self.deadline:
      self.time_limit_hit = True
      self.save("time limit")
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    self.save("end of epoch %d" % (epoch + 1))
    if any(k.startswith("val_") for k in (logs or {})):
      self.last_test_step = self.step
    self._check_deadline()  # do not start another epoch after the limit


class BestKeeper(keras.callbacks.Callback):
  """Keeps the checkpoint with the lowest ``eval.keep_best`` metric in ``workdir/best/``.

  After every evaluation during training (on the validation split when
  ``data.validation_examples`` holds one out, else on the test split) it compares
  the metric (after :meth:`draw_tf.training.tasks.Task.test_metrics`, e.g. ``error_percent``)
  with the best so far and, when lower, saves the model there (one checkpoint)
  and ``best.json`` (step, metric, value, split). The best so far is read back
  from ``best.json`` on resume. Runs on every worker (a save is a collective
  under multi-worker training); non-chief workers save to a scratch folder.
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, directory: str, metric: str, task: tasks.Task,
               split: str, chief: bool = True):
    super().__init__()
    self.metric, self.task, self.split, self.chief = metric, task, split, chief
    self.directory = directory
    self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1, checkpoint_name="best")
    self.best = None
    path = os.path.join(directory, BEST_FILE)
    if os.path.exists(path):
      with open(path) as f:
        self.best = json.load(f)

  def consider(self, metrics: dict, step: int) -> None:
    """``metrics``: one evaluation's (``model.evaluate``'s names, no ``val_`` prefix) at ``step``."""
    metrics = self.task.test_metrics(dict(metrics))
    if self.metric not in metrics:
      return
    value = float(metrics[self.metric])
    if not math.isfinite(value) or (self.best is not None and value >= self.best["value"]):
      return
    path = self.manager.save(checkpoint_number=step)
    self.best = {"step": step, "metric": self.metric, "value": value, "split": self.split,
                 "checkpoint": os.path.basename(path)}
    if self.chief:
      write_json(os.path.join(self.directory, BEST_FILE), self.best)
    logging.info("New best %s %s %.4f at step %d: kept in %s", self.split, self.metric, value, step, path)

  def on_epoch_end(self, epoch, logs=None):
    metrics = {k[len("val_"):]: v for k, v in (logs or {}).items() if k.startswith("val_")}
    if metrics:
      self.consider(metrics, int(self.model.optimizer.iterations.numpy()))


class LatentUsageReader(keras.callbacks.Callback):
  """Reads the evaluation's latent usage (active units, KL per step) into ``model.latent_usage_last``.

  Runs on every worker: under ``MultiWorkerMirroredStrategy`` reading the
  metric's variables is a collective that all workers must join, so the
  chief-only :class:`Reporter` uses this Python copy instead.
  """

  def __init__(self, task: tasks.Task):
    super().__init__()
    self.task = task

  def on_test_end(self, logs=None):
    self.task.read_latent_usage(self.model)


class Reporter(StepCallback):
  """TensorBoard scalars and images, ``metrics.jsonl`` and sample pictures (chief only).

  Train scalars are the means over the steps since the previous write; test
  scalars come from the epoch's evaluation on the test split.
  """

  def __init__(self, workdir: str, config, checkpointer: Checkpointer, task: tasks.Task, test_split=None,
               clock: BudgetClock | None = None, eval_name: str = "test", average: WeightAverage | None = None):
    super().__init__()
    self.average = average  # pictures are drawn with the weight average when training keeps one
    self.clock = clock  # a budget run's lines also say its training minutes
    self.eval_name = eval_name  # "validation" when data.validation_examples holds one out
    self.workdir = workdir
    self.config = config
    self.checkpointer = checkpointer
    self.task = task
    self.test_split = test_split  # classifier: images for the glimpse GIF
    tb = os.path.join(workdir, "tensorboard")
    self.train_writer = tf.summary.create_file_writer(os.path.join(tb, "train"))
    self.test_writer = tf.summary.create_file_writer(os.path.join(tb, eval_name))
    self.start_time = time.time()
    self._previous = {}
    self.last_picture_step = None
    self.collapse_warned = False

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

  def on_epoch_begin(self, epoch, logs=None):
    self._previous = {}

  def on_train_batch_end(self, batch, logs=None):
    step = self.step
    if step % self.config.train.log_every_steps or self.checkpointer.failed_step is not None:
      return
    count = batch + 1
    with self.train_writer.as_default(step=step):
      for key, value in (logs or {}).items():
        if key == "images/s":
          tf.summary.scalar("images_per_second", value)
          continue
        prev_value, prev_count = self._previous.get(key, (0.0, 0))
        interval = (value * count - prev_value * prev_count) / max(count - prev_count, 1)
        tf.summary.scalar(key, interval)
        self._previous[key] = (value, count)
      tf.summary.scalar("learning_rate", self.learning_rate())

  def on_epoch_end(self, epoch, logs=None):
    if self.checkpointer.failed_step is not None:
      return
    # A budget segment is labelled by the last mark its minutes passed (a step that passes several
    # marks skips their labels); one stopped early by max_minutes keeps its own, merged on resume.
    label = max(epoch + 1, self.clock.segments_done()) if self.clock is not None else epoch + 1
    self.record(label, logs or {})

  def record(self, epoch, logs, pictures=True, recovered=False):
    """Writes the test scalars, a ``metrics.jsonl`` line and the pictures for this step.

    An epoch has one line: a second record of the same epoch (the final
    evaluation of an epoch that had none) is merged into it.
    """
    step = self.step
    test = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
    train = {k: v for k, v in logs.items() if not k.startswith("val_")}
    test = self.task.test_metrics(test)
    if test:
      with self.test_writer.as_default(step=step):
        for key, value in test.items():
          tf.summary.scalar(key, value)
        tf.summary.scalar("epoch", epoch)
      self.task.log_test(step, epoch, test, self.eval_name)
    usage = {}
    if test and getattr(self.model, "latent_usage_last", None):
      usage = dict(self.model.latent_usage_last)
      test["active_units"] = usage.pop("active_units")
      with self.test_writer.as_default(step=step):
        tf.summary.histogram("kl_per_step", usage["kl_per_step"])
      message = diagnostics.collapse_message(test.get("kl", float("nan")), step)
      if message and not self.collapse_warned:
        logging.warning(message)
        self.collapse_warned = True
    line = {"epoch": epoch, "step": step, "minutes": round((time.time() - self.start_time) / 60, 3),
            **({"train_minutes": round(self.clock.minutes, 3)} if self.clock is not None else {}),
            "learning_rate": self.learning_rate(), "time": round(time.time(), 1),
            **{f"train_{k}": v for k, v in train.items()},
            **{f"{self.eval_name}_{k}": v for k, v in test.items()},
            **{f"{self.eval_name}_{k}": v for k, v in usage.items()}}
    if recovered:
      line["recovered"] = "written on resume from the checkpoint; the epoch's train metrics were lost"
    write_metrics_line(os.path.join(self.workdir, METRICS_FILE), line)
    if pictures:
      self.pictures(step)

  def pictures(self, step):
    self.last_picture_step = step
    with (self.average.applied(self.model.trainable_variables) if self.average is not None
          else contextlib.nullcontext()):
      self.task.pictures(self.model, self.config.eval, os.path.join(self.workdir, tasks.SAMPLES_DIR), step,
                         self.test_split, self.train_writer)
    self.train_writer.flush()
    self.test_writer.flush()

  def close(self):
    self.train_writer.close()
    self.test_writer.close()


# ----------------------------------------------------------------------------
# The training loop


def _evaluate_logs(model, test_ds, average) -> dict:
  """``val_*`` logs of one evaluation outside ``fit``; with a weight average, of the average,
  and ``val_raw_*`` of the weights as trained (evaluated first, so the model's evaluation
  state, e.g. its latent usage, is the average's)."""
  evaluate = lambda: model.evaluate(test_ds, verbose=0, return_dict=True)
  if average is None:
    return {f"val_{k}": v for k, v in evaluate().items()}
  raw = evaluate()
  with average.applied(model.trainable_variables):
    logs = evaluate()
  return {**{f"val_{k}": v for k, v in logs.items()}, **{f"val_raw_{k}": v for k, v in raw.items()}}


def _budget_segments(clock: BudgetClock):
  """``(initial_epoch, epochs, steps_per_epoch)`` of each ``fit`` left in a budget: one segment each."""
  while not clock.spent:
    done = clock.segments_done()
    yield done, done + 1, None


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
  strategy = make_strategy(config.train.strategy)
  chief = _is_chief(strategy)
  # One writer per workdir: the chief holds the lock, the other workers of the run do not.
  with workdir_lock.hold(workdir) if chief else contextlib.nullcontext():
    return _train(config, workdir, strategy, chief, callbacks)


def _train(config, workdir: str, strategy, chief: bool, callbacks):
  """The body of :func:`train_and_evaluate`, run while holding the workdir's lock."""
  changes = workdir_lib.check_or_write_config(config, workdir, write=False)
  if "train.budget_minutes" in changes and 0 in [float(v or 0) for v in changes["train.budget_minutes"]]:
    old, new = changes["train.budget_minutes"]
    raise ConfigError(
        f"{workdir} holds a run trained {'by epochs' if not old else f'with a budget of {old} minutes'}; "
        f"train.budget_minutes = {new} would {'start' if not old else 'drop'} a time budget midway. "
        "Resume it as it was started (a budget may be changed, not added or removed), or train in a new "
        "--workdir.")
  logging.info("Workdir %s; strategy %s with %d replica(s)", workdir, type(strategy).__name__,
               strategy.num_replicas_in_sync)

  train_split, test_split, info = data.load_splits(config.data)
  # Training's evaluations (and eval.keep_best) run on the held-out validation split if there is one.
  train_split, validation_split = data.hold_out_validation(train_split, config.data)
  eval_split, eval_name = ((validation_split, "validation") if validation_split is not None
                           else (test_split, "test"))
  if tuple(info.image_shape) != tuple(config.model.image_shape):
    raise ConfigError(
        f"Dataset {info.name!r} has images of shape {info.image_shape}, but config.model.image_shape is "
        f"{tuple(config.model.image_shape)}; pass --config.model.image_shape=\"{tuple(info.image_shape)}\".")
  task = tasks.get(config)
  train_cfg = config.train
  if train_cfg.batch_size > train_split.num_examples:
    raise ConfigError(f"train.batch_size = {train_cfg.batch_size} is larger than the "
                      f"{train_split.num_examples} training examples.")
  steps_per_epoch = train_cfg.steps_per_epoch or train_split.num_examples // train_cfg.batch_size
  total_steps = steps_per_epoch * train_cfg.num_epochs

  budget = train_cfg.budget_minutes > 0
  fields = workdir_lib.config_to_dict(config.model)
  memory.check_fits(memory.training_bytes(fields, train_cfg.batch_size),
                    f"Training this model ({memory.describe_model(fields)}, train.batch_size={train_cfg.batch_size})",
                    "lower the largest of these sizes (--config.model.FIELD=...) or --config.train.batch_size")

  keras.utils.set_random_seed(train_cfg.seed)
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
  checkpoint_dir = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
  # The newest checkpoint that reads back whole; damaged newer ones are named and set aside.
  latest, damaged = checkpoints.newest_good_checkpoint(checkpoint_dir)
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if latest is None and checkpoints.real(damaged):
    raise NoCheckpointError(
        f"Every checkpoint in {checkpoint_dir} is damaged ({checkpoints.describe(damaged)}). Refusing to "
        "restart this run from step 0; move the folder away to start over, or train in a new --workdir.")
  if latest is None and read_metrics(metrics_path):
    raise NoCheckpointError(
        f"{metrics_path} records a run but {checkpoint_dir} holds no checkpoint. Refusing to "
        "restart it from step 0; train in a new --workdir.")
  if latest:  # a checkpoint trained with other model fields (config.json edited) is named, field by field
    checkpoints.check_fits(latest, model, workdir_lib.config_to_dict(config.model),
                           lambda changes: workdir_lib.build_model(config, changes))
    checkpoint.restore(latest).assert_existing_objects_matched()
  step = int(optimizer.iterations.numpy())
  if budget:
    clock.sync_progress()
  if latest and budget:
    logging.info("Resumed from %s at step %d after %.2f of %.2f training minutes", latest, step,
                 clock.minutes, train_cfg.budget_minutes)
  elif latest:
    logging.info("Resumed from %s at step %d (epoch %d, step %d of %d)", latest, step,
                 step // steps_per_epoch + 1, step % steps_per_epoch, steps_per_epoch)
  if chief:
    # Validated and restored: only now is the workdir written.
    os.makedirs(workdir, exist_ok=True)
    if damaged:
      checkpoints.set_aside(checkpoint_dir, damaged)
    if latest or damaged:
      # The state file lists exactly the checkpoints present (a kill between a save's files and
      # its state update leaves one unlisted, which the manager would then never rotate out).
      checkpoints.rewrite_state(checkpoint_dir)
    dropped = trim_metrics(metrics_path, step)
    if dropped:
      logging.warning("Dropped %d metrics.jsonl line(s) after step %d (the run resumes there).",
                      dropped, step)
    if changes:
      logging.warning("Resuming with changed training fields: %s",
                      ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))
      record_config_changes(metrics_path, step, changes)
    workdir_lib.check_or_write_config(config, workdir, write=True)
  scratch = None if chief else tempfile.mkdtemp(prefix="draw_tf_worker_ckpt_")
  manager = tf.train.CheckpointManager(checkpoint, scratch or checkpoint_dir, train_cfg.max_checkpoints)
  if budget:
    logging.info("Model: %s; %d parameters; a budget of %g training minutes (evaluation not counted), "
                 "evaluated every %g minutes; the learning-rate decay follows the minutes",
                 json.dumps(workdir_lib.config_to_dict(config.model)), model.count_params(),
                 train_cfg.budget_minutes, clock.every / 60)
  else:
    logging.info("Model: %s; %d parameters; %d steps per epoch, %d epochs (%d steps)",
                 json.dumps(workdir_lib.config_to_dict(config.model)), model.count_params(), steps_per_epoch,
                 train_cfg.num_epochs, total_steps)

  noise_shape = task.noise_shape(config, model)
  test_ds = task.eval_dataset(config, eval_split, noise_shape)
  checkpointer = Checkpointer(manager, train_cfg.checkpoint_every_steps, train_cfg.max_minutes)
  reporter = (Reporter(workdir, config, checkpointer, task, test_split, clock, eval_name, average)
              if chief else None)
  keeper = None
  if config.eval.get("keep_best"):
    keeper = BestKeeper(tf.train.Checkpoint(model=model, **averaged), os.path.join(scratch or workdir, BEST_DIR),
                        config.eval.keep_best, task, eval_name, chief)
  # The clock runs first: the checkpoint saved at a step holds that step's training seconds.
  # The weight average is updated before the checkpointer saves a step and adds the raw
  # evaluation to the logs before the keeper and the reporter read them.
  averaging = [WeightAveraging(average, test_ds)] if average is not None else []
  all_callbacks = [*([clock] if budget else []), *averaging, Throughput(train_cfg.batch_size), checkpointer,
                   interrupts.StopOnInterrupt(save=lambda: checkpointer.save("Ctrl-C")),
                   LatentUsageReader(task), *([keeper] if keeper else []), *([reporter] if reporter else []),
                   *callbacks]
  for callback in all_callbacks:
    if callback not in callbacks:
      callback.set_model(model)  # also used outside fit (final checkpoint, pictures)

  # A run killed between its epoch-end checkpoint and the metrics.jsonl line gets that line now
  # (test metrics only: the epoch's training means were lost with the process). With a budget an
  # "epoch" is a segment of eval.every_minutes.
  if budget:
    first_epoch, offset = clock.segments_done(), 0
  else:
    first_epoch, offset = divmod(step, steps_per_epoch)
  if latest and offset == 0 and first_epoch > 0 and not any(
      line.get("epoch") == first_epoch for line in read_metrics(metrics_path)):
    logs = {}
    if budget or first_epoch % config.eval.every_epochs == 0 or first_epoch >= train_cfg.num_epochs:
      logs = _evaluate_logs(model, test_ds, average)
      checkpointer.last_test_step = step
      if keeper is not None:
        keeper.consider({k[len("val_"):]: v for k, v in logs.items()}, step)
    if reporter is not None:
      logging.warning("metrics.jsonl has no line for epoch %d (killed after its checkpoint); "
                      "writing it from the checkpoint.", first_epoch)
      reporter.record(first_epoch, logs, pictures=False, recovered=True)

  # A resumed run first finishes its interrupted epoch, then runs whole epochs. With a budget each
  # segment is one fit of one epoch that the clock ends (steps_per_epoch None: the stream is endless).
  # A step that crosses several marks skips their segments: a line's epoch is the last mark it passed.
  phases = []
  if budget:
    phases = _budget_segments(clock)
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

  history = {}
  trained = False
  try:
    for initial_epoch, epochs, steps in phases:
      trained = True
      start_step = int(optimizer.iterations.numpy())
      train_ds = task.train_dataset(config, train_split, start_step, noise_shape)
      result = model.fit(
          train_ds, initial_epoch=initial_epoch, epochs=epochs, steps_per_epoch=steps,
          validation_data=test_ds, validation_freq=1 if budget else config.eval.every_epochs,
          callbacks=all_callbacks, verbose=train_cfg.verbose if chief else 0, shuffle=False)
      for key, values in result.history.items():
        history.setdefault(key, []).extend(values)
      if checkpointer.failed_step is not None or checkpointer.time_limit_hit or (budget and clock.spent):
        break
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
                   train_cfg.max_minutes, int(optimizer.iterations.numpy()))
    final_step = int(optimizer.iterations.numpy())
    if trained and checkpointer.last_test_step != final_step:
      # The last epoch was not evaluated (eval.every_epochs): evaluate now (on every worker).
      logs = _evaluate_logs(model, test_ds, average)
      task.read_latent_usage(model)
      if keeper is not None:
        keeper.consider({k[len("val_"):]: v for k, v in logs.items()}, final_step)
      if reporter is not None:
        epoch = clock.segments_done() if budget else -(-final_step // steps_per_epoch)
        reporter.record(epoch, logs, pictures=False)
    if reporter is not None and reporter.last_picture_step != final_step:
      reporter.pictures(final_step)
  finally:
    if reporter is not None:
      reporter.close()
    if scratch:
      shutil.rmtree(scratch, ignore_errors=True)
  return model, history
