"""Workarounds for TensorFlow 2.21 / Keras 3.15, each in one place, with why it exists.

Everything here stands in for something the libraries get wrong or do not
offer publicly; each has a test in ``tests/test_workarounds.py`` (or, for the
multi-worker ones, ``tests/test_strategies.py``) that fails when the
workaround is removed or no longer needed. Nothing else in draw-tf touches a
private TensorFlow or Keras API.

* :func:`cross_replica_clip`: Keras 3 optimizers clip each replica's share of
  the gradient under ``MirroredStrategy``, not the summed gradient.
* :func:`multi_worker_logs`: Keras 3.15 cannot reduce scalar step logs under
  multi-worker ``MultiWorkerMirroredStrategy`` (tensorflow/tensorflow#72388).
* :class:`NoSampleBatchBuild`: Keras 3.15's ``fit`` ``strategy.reduce()``\\ s a
  sample batch to build the model, which fails for dict batches under
  ``MultiWorkerMirroredStrategy``.
* :class:`JitFunctions`: ``compile(jit_compile=True)`` in Keras puts
  ``apply_gradients`` inside XLA, which fails under ``MirroredStrategy``;
  this compiles the forward pass and gradient only.
* :func:`dynamic_update_slice`: the one TF op that the TFLite converter maps
  to its builtin ``DYNAMIC_UPDATE_SLICE``; it is only importable from
  TensorFlow's XLA Python module.
"""

from __future__ import annotations

import keras
import tensorflow as tf
# XlaDynamicUpdateSlice: a plain TF op (CPU kernel, no XLA needed) that the
# TFLite converter maps to the builtin DYNAMIC_UPDATE_SLICE. tf.tensor_scatter_*
# and TensorArray do not convert to builtins with a dynamic batch size.
from tensorflow.compiler.tf2xla.python import xla as _xla


def dynamic_update_slice(operand, update, start_indices):
  """``operand`` with ``update`` written at ``start_indices`` (XLA's DynamicUpdateSlice)."""
  return _xla.dynamic_update_slice(operand, update, start_indices)


def cross_replica_clip(optimizer, grads):
  """Clips the cross-replica gradient as ``optimizer`` would on one device.

  Keras 3 optimizers clip (``global_clipnorm``, ``clipnorm``, ``clipvalue``)
  each replica's share of the gradient *before* summing the shares, so under
  ``MirroredStrategy`` clipping acts on the wrong tensor and training differs
  from one device. Here, with more than one replica, the shares are summed
  first, clipped with the optimizer's own settings, and handed back as equal
  shares: the optimizer's per-replica clip then leaves them as they are (each
  share's norm is at most ``clip / replicas``) and its sum is the clipped
  global gradient.

  Args:
    optimizer: the model's Keras optimizer (a ``LossScaleOptimizer`` too).
    grads: this replica's gradients (of its share of the global-batch mean).

  Returns:
    ``(grads, grad_norm)``: gradients to pass to ``apply_gradients`` and the
    global norm of the whole, unclipped gradient (a scalar).
  """
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  opt = optimizer
  # Under mixed_float16 the gradients are of the loss times the dynamic loss
  # scale; the LossScaleOptimizer unscales them before its inner optimizer
  # clips. Norms and clip thresholds here are taken in that scaled space.
  loss_scale = 1.0
  if isinstance(opt, keras.optimizers.LossScaleOptimizer):
    loss_scale = tf.cast(opt.dynamic_scale, tf.float32)
    opt = opt.inner_optimizer
  if replicas == 1:
    return grads, tf.linalg.global_norm(grads) / loss_scale
  total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
  grad_norm = tf.linalg.global_norm(total) / loss_scale
  if opt.global_clipnorm:
    scale = opt.global_clipnorm * tf.minimum(1.0 / grad_norm, 1.0 / opt.global_clipnorm)
    total = [g * scale for g in total]
  elif opt.clipnorm:
    total = [tf.clip_by_norm(g, opt.clipnorm * loss_scale) for g in total]
  elif opt.clipvalue:
    limit = opt.clipvalue * loss_scale
    total = [tf.clip_by_value(g, -limit, limit) for g in total]
  return [g / replicas for g in total], grad_norm


def multi_worker_logs(logs: dict) -> dict:
  """Step logs as Keras can reduce them under multi-worker ``MultiWorkerMirroredStrategy``.

  Keras 3.15 reduces each replica's logs there with
  ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars
  (tensorflow/tensorflow#72388); shape ``[1]`` reduces to the scalar mean.
  Elsewhere the logs are returned as they are.
  """
  strategy = tf.distribute.get_strategy()
  if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
      and strategy.extended._in_multi_worker_mode()):  # pylint: disable=protected-access  (Keras's own test)
    return {k: tf.reshape(v, [1]) for k, v in logs.items()}
  return logs


class NoSampleBatchBuild:
  """Mixin for a ``keras.Model`` whose variables all exist after ``compile()``.

  Keras 3.15's ``fit``/``evaluate`` take a sample batch to build the model
  symbolically and ``strategy.reduce()`` it, which fails for
  ``{"images", "noise"}`` batches under ``MultiWorkerMirroredStrategy``. A
  model that creates every variable (optimizer slots included) in
  ``__init__`` and ``compile`` needs no sample batch, so none is passed.
  """

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    return super()._maybe_symbolic_build(iterator=None, data_batch=data_batch)


class JitFunctions:
  """``tf.function(jit_compile=True)`` versions of a model's methods, made once each.

  Keras's ``compile(jit_compile=True)`` compiles the whole train step,
  ``apply_gradients`` included, which fails under ``MirroredStrategy``; the
  model compiles only its forward pass and gradient with these, and applies
  the gradients outside XLA.

  Args:
    enabled: ``False`` returns every function as it is.
  """

  def __init__(self, enabled: bool):
    self.enabled = bool(enabled)
    self._functions = {}

  def __call__(self, fn):
    """``fn`` compiled with XLA (the same compiled function on every call), or ``fn`` if disabled."""
    if not self.enabled:
      return fn
    # Bound methods of one object compare (and hash) equal, so model.eval_terms
    # finds its compiled function again on every step.
    if fn not in self._functions:
      self._functions[fn] = tf.function(fn, jit_compile=True, reduce_retracing=True)
    return self._functions[fn]
