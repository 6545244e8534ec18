"""A moving average of the weights (Polyak averaging), used for evaluation and export.

With ``train.ema_decay = d > 0`` training keeps, beside the weights ``w`` the
optimizer updates, an exponential moving average of them (Polyak & Juditsky
1992; the form used by most modern training recipes)::

    a_0 = w_1                          (the first update copies the weights)
    a_k = d * a_{k-1} + (1 - d) * w_k  (after every later optimizer step k)

It averages roughly the last ``1 / (1 - d)`` steps, which smooths out the noise
of the last steps' updates. The optimizer never sees ``a``: training goes on
from ``w``. Evaluations during training (``metrics.jsonl``'s ``test_*``) and
everything that reads a workdir afterwards (``draw-eval``, ``draw-sample``,
``draw-export``) use ``a``; ``metrics.jsonl``'s ``test_raw_*`` keep the bound
of ``w`` beside it, which is how what the average gives is measured.

The average lives in the training checkpoint under ``weight_average`` (so a
resumed run continues it) and in the ``best/`` checkpoint. A checkpoint without
it (older runs, ``ema_decay = 0``) restores the weights as they are.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

CHECKPOINT_KEY = "weight_average"  # the tf.train.Checkpoint dependency name


class WeightAverage(tf.Module):
  """The averages ``a`` of a list of variables, and the number of updates so far.

  Args:
    variables: the model's trainable variables (their order is the pairing;
      :attr:`keras.Model.trainable_variables` gives the same order for the same model).
    decay: ``d`` in [0, 1).

  Example::

    average = WeightAverage(model.trainable_variables, decay=0.999)
    average.update(model.trainable_variables)          # after each optimizer step
    with average.applied(model.trainable_variables):   # evaluate the average
      model.evaluate(test_ds)
  """

  def __init__(self, variables, decay: float):
    super().__init__(name="weight_average")
    if not 0.0 <= decay < 1.0:
      raise ValueError(f"decay must be in [0, 1), got {decay!r}.")
    self.decay = float(decay)
    # ONLY_FIRST_REPLICA: under a tf.distribute strategy every replica holds the same weights,
    # so the average may be assigned from any context.
    self.averages = [
        tf.Variable(tf.convert_to_tensor(v), trainable=False, name=f"average_{i}",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for i, v in enumerate(variables)]
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def _check(self, variables):
    variables = list(variables)
    shapes = [tuple(v.shape) for v in variables]
    expected = [tuple(a.shape) for a in self.averages]
    if shapes != expected:
      raise ValueError(f"The weight average holds shapes {expected}, the variables have {shapes}.")
    return variables

  @tf.function
  def _update(self, variables):
    # a = w on the first update (count 0), else d a + (1 - d) w.
    decay = tf.where(self.count > 0, self.decay, 0.0)
    for average, v in zip(self.averages, variables):
      average.assign(decay * average + (1.0 - decay) * tf.cast(v, average.dtype))
    self.count.assign_add(1)

  def update(self, variables) -> None:
    """One averaging step with the current values of ``variables``."""
    self._update(self._check(variables))

  @contextlib.contextmanager
  def applied(self, variables):
    """Within the block ``variables`` hold the averages; their own values come back after it.

    Before the first update (count 0) the variables are left as they are.
    """
    variables = self._check(variables)
    if int(self.count.numpy()) == 0:
      yield
      return
    saved = [tf.identity(v) for v in variables]
    for v, average in zip(variables, self.averages):
      v.assign(average)
    try:
      yield
    finally:
      for v, value in zip(variables, saved):
        v.assign(value)


def checkpoint_has_average(path: str) -> bool:
  """Whether the checkpoint ``path`` (a ``ckpt-N`` prefix) holds a weight average."""
  names = [name for name, _ in tf.train.list_variables(path)]
  return any(name.startswith(CHECKPOINT_KEY + "/") for name in names)


def restore_average(model, path: str) -> bool:
  """Sets ``model``'s trainable weights to the average saved in checkpoint ``path``, if it has one.

  Returns:
    ``True`` when the weights now hold the average (the checkpoint has one
    with at least one update), ``False`` when they were left as they are.
  """
  if not checkpoint_has_average(path):
    return False
  average = WeightAverage(model.trainable_variables, decay=0.0)
  tf.train.Checkpoint(**{CHECKPOINT_KEY: average}).restore(path).expect_partial()
  if int(average.count.numpy()) == 0:
    return False
  for v, a in zip(model.trainable_variables, average.averages):
    v.assign(a)
  return True


class WeightAveraging(keras.callbacks.Callback):
  """Keeps a :class:`WeightAverage` during ``fit`` and evaluates it.

  After every training batch the average takes one step. Evaluations inside
  ``fit`` (``validation_data``) run on the average; after each epoch that had
  one, the weights as trained are evaluated too and added to the logs as
  ``val_raw_*`` (``metrics.jsonl``: ``test_raw_*``). Place it before the
  callbacks that record the logs.

  Args:
    average: the :class:`WeightAverage` of the model's trainable variables.
    raw_eval_data: the dataset of the raw evaluation (``fit``'s ``validation_data``).
  """

  def __init__(self, average: WeightAverage, raw_eval_data=None):
    super().__init__()
    self.average = average
    self.raw_eval_data = raw_eval_data
    self._stack = contextlib.ExitStack()

  def on_train_batch_end(self, batch, logs=None):
    self.average.update(self.model.trainable_variables)

  def on_test_begin(self, logs=None):
    self._stack.enter_context(self.average.applied(self.model.trainable_variables))

  def on_test_end(self, logs=None):
    self._stack.close()

  def on_epoch_end(self, epoch, logs=None):
    if logs is None or self.raw_eval_data is None or not any(k.startswith("val_") for k in logs):
      return
    raw = self.model.evaluate(self.raw_eval_data, verbose=0, return_dict=True)
    logs.update({f"val_raw_{k}": v for k, v in raw.items()})
