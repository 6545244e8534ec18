"""Shared test helpers: the tiny DRAW model and the layer config round-trip check.

    from tests import helpers
    model = helpers.tiny_model(num_steps=5)       # TINY_MODEL with num_steps=5
    helpers.perturb_weights(model)                # every term non-zero
    helpers.assert_layer_round_trip(layer, x, h)  # config and outputs survive
"""

import keras
import numpy as np

import draw_tf

# The tiny DrawModel most tests use: 12 x 10 binary images, T = 3, z of 4,
# 8-unit LSTMs, 2 x 2 read and 3 x 3 write grids.
TINY_MODEL = dict(image_shape=(12, 10, 1), num_steps=3, latent_dim=4, encoder_units=8,
                  decoder_units=8, read_size=2, write_size=3)


def tiny_model_kwargs(**overrides) -> dict:
  """:data:`TINY_MODEL` with ``overrides`` replacing (or adding) fields."""
  return {**TINY_MODEL, **overrides}


def tiny_model(**overrides) -> draw_tf.DrawModel:
  """A :class:`draw_tf.DrawModel` built from ``tiny_model_kwargs(**overrides)``."""
  return draw_tf.DrawModel(**tiny_model_kwargs(**overrides))


def perturb_weights(model, scale: float = 0.3, seed: int = 0):
  """Adds seeded normal noise to every trainable variable (random non-zero biases
  etc., so a test exercises every term); returns ``model``."""
  rng = np.random.default_rng(seed)
  for v in model.trainable_variables:
    v.assign(v.numpy() + rng.normal(scale=scale, size=v.shape).astype(np.float32))
  return model


def assert_layer_round_trip(layer, *call_args, call=None):
  """Asserts that ``layer`` survives Keras serialisation with its config and outputs.

  The clone comes from ``keras.layers.deserialize(keras.layers.serialize(layer))``
  (so the class must be registered serialisable); it must have ``layer``'s type
  and config. With ``call_args``, the clone gets ``layer``'s weights and must
  give bit-identical outputs (every leaf of a nested structure).

  Args:
    layer: a Keras layer or model.
    *call_args: inputs to compare the outputs on (none: compare configs only).
    call: ``fn(layer, *call_args) -> outputs``; default ``layer(*call_args)``.

  Returns:
    The clone (with ``layer``'s weights when ``call_args`` were given).
  """
  call = call or (lambda l, *args: l(*args))
  want = call(layer, *call_args) if call_args else None  # also builds ``layer``
  clone = keras.layers.deserialize(keras.layers.serialize(layer))
  assert type(clone) is type(layer)
  assert clone.get_config() == layer.get_config()
  if call_args:
    if not clone.built or len(clone.weights) != len(layer.weights):
      call(clone, *call_args)  # builds the clone's weights
    clone.set_weights(layer.get_weights())
    got = call(clone, *call_args)
    want_leaves, got_leaves = keras.tree.flatten(want), keras.tree.flatten(got)
    assert len(got_leaves) == len(want_leaves) > 0
    for g, w in zip(got_leaves, want_leaves):
      np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
  return clone


def format1_signature_functions(signature_functions):
  """``signature_functions`` whose ``write_windows`` is ``[N, T, 3]`` (no sigma), as in exports of
  manifest format 1: patch ``export_lib.signature_functions`` with it to write such an export."""

  def three_columns(fn):
    def wrapped(x):
      out = dict(fn(x))
      out["write_windows"] = out["write_windows"][..., :3]
      return out
    return wrapped

  def functions(model, steps_per_iteration=4):
    return tuple(three_columns(fn) for fn in signature_functions(model, steps_per_iteration))

  return functions
