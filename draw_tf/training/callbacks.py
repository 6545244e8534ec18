"""The Keras callbacks of ``train_and_evaluate``, in the order the loop runs them.

- :class:`BudgetClock`: the training minutes of a ``train.budget_minutes`` run;
- :class:`Throughput`: ``images/s`` in the logs;
- :class:`Checkpointer`: checkpoints, the stop on NaN/Inf and at ``train.max_minutes``;
- :class:`LatentUsageReader`: the evaluation's latent usage, read on every worker;
- :class:`BestKeeper`: the checkpoint with the best ``eval.keep_best`` metric;
- :class:`Reporter`: TensorBoard, ``metrics.jsonl`` and pictures (chief only).

:class:`draw_tf.model.weight_average.WeightAveraging` and
:class:`draw_tf.training.interrupts.StopOnInterrupt` live beside what they handle.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time

from absl import logging
import keras
import tensorflow as tf

from draw_tf.fileio import write_json
from draw_tf.model import diagnostics
from draw_tf.model.weight_average import WeightAverage
from draw_tf.runs import checkpoints
from draw_tf.training import metrics_log
from draw_tf.training import tasks

BEST_FILE = "best.json"


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


def evaluate_logs(model, test_ds, average) -> dict:
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


def budget_segments(clock: BudgetClock):
  """``(initial_epoch, epochs, steps_per_epoch)`` of each ``fit`` left in a budget: one segment each."""
  while not clock.spent:
    done = clock.segments_done()
    yield done, done + 1, None


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
    metrics_log.write_metrics_line(os.path.join(self.workdir, metrics_log.METRICS_FILE), line)
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
