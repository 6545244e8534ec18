"""draw_tf.model.workarounds: each workaround does what its docstring says.

The multi-replica behaviour is checked end to end in tests/test_strategies.py
(MirroredStrategy over two logical CPUs and MultiWorkerMirroredStrategy over
two local workers, each against one device); these tests check each piece on
its own.
"""

import keras
import numpy as np
import tensorflow as tf

import draw_tf
from draw_tf.model import workarounds
from tests.helpers import tiny_model


def test_dynamic_update_slice_writes_the_block_where_numpy_would():
  operand = np.zeros((3, 4, 5), np.float32)
  update = np.arange(2 * 4 * 2, dtype=np.float32).reshape(2, 4, 2) + 1
  got = workarounds.dynamic_update_slice(tf.constant(operand), tf.constant(update), tf.constant([1, 0, 2]))
  want = operand.copy()
  want[1:3, :, 2:4] = update
  np.testing.assert_array_equal(got.numpy(), want)


def test_cross_replica_clip_on_one_replica_leaves_the_gradient_and_reports_its_norm():
  grads = [tf.constant([3.0, 0.0]), tf.constant([[4.0]])]
  opt = keras.optimizers.Adam(global_clipnorm=1.0)  # the optimizer clips; this must not
  got, norm = workarounds.cross_replica_clip(opt, grads)
  assert got is grads
  np.testing.assert_allclose(norm.numpy(), 5.0, rtol=1e-6)


def test_cross_replica_clip_reports_the_unscaled_norm_under_loss_scaling():
  """Under mixed_float16 the gradients carry the loss scale; the reported norm must not."""
  opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(), initial_scale=8.0)
  opt.build([keras.Variable([0.0, 0.0])])  # creates the dynamic scale
  _, norm = workarounds.cross_replica_clip(opt, [tf.constant([24.0, 32.0])])
  np.testing.assert_allclose(norm.numpy(), 5.0, rtol=1e-6)


def test_multi_worker_logs_are_unchanged_outside_multi_worker_training():
  logs = {"loss": tf.constant(1.5), "kl": tf.constant(0.25)}
  assert workarounds.multi_worker_logs(logs) is logs
  with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
    assert workarounds.multi_worker_logs(logs) is logs


def test_jit_functions_compile_once_and_only_when_enabled():
  def square(x):
    return x * x

  assert workarounds.JitFunctions(False)(square) is square
  jit = workarounds.JitFunctions(True)
  compiled = jit(square)
  assert compiled is jit(square)  # one compiled function, not one per call
  assert compiled is not square
  np.testing.assert_array_equal(compiled(tf.constant([2.0, 3.0])).numpy(), [4.0, 9.0])


def test_every_variable_exists_after_compile_so_fit_needs_no_sample_batch():
  """NoSampleBatchBuild is sound only if fit() creates no variable: check that it creates none."""
  model = tiny_model()
  assert isinstance(model, workarounds.NoSampleBatchBuild)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  before = {id(v) for v in model.variables} | {id(v) for v in model.optimizer.variables}
  images = (np.random.default_rng(0).random((4, *model.image_shape)) < 0.5).astype(np.float32)
  noise = np.zeros((4, model.num_steps, model.latent_dim), np.float32)
  model.fit({"images": images, "noise": noise}, batch_size=4, epochs=1, verbose=0)
  after = {id(v) for v in model.variables} | {id(v) for v in model.optimizer.variables}
  assert after == before
  assert isinstance(model, draw_tf.DrawModel)
