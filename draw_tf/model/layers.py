"""The recurrent and convolutional layers inside a DRAW step.

* :func:`lstm_update`: the LSTM state update from gate pre-activations, the
  one place the gate maths is written (the training cell and the fused
  sampler both call it).
* :class:`LSTMCell`: an LSTM whose four gates come from one matmul.
* :class:`LSTMEncoder`: the encoder LSTM with the encoder's signature
  ``(glimpse, context, states) -> (h, (h, c))``.
* :class:`ConvFeatures`: two 3x3 ReLU convolutions (``read_features="conv"``).
* :class:`ConvEncoder`: a feed-forward encoder (``encoder="conv"``) with the
  same signature as :class:`LSTMEncoder`.

All are registered for Keras serialisation.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_PACKAGE = "draw_tf"


def lstm_update(gates, c, return_activations=False):
  """The LSTM state update (Hochreiter and Schmidhuber; the gate order of Keras).

  Args:
    gates: ``[batch, 4 * units]`` float32 pre-activations, split as (input,
      forget, cell, output).
    c: ``[batch, units]`` previous cell state.

  Returns:
    ``(h, c)``, each ``[batch, units]``:
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)`` and ``h = sigmoid(o) * tanh(c')``;
    with ``return_activations`` also the gate activations ``[batch, 4 * units]``
    (``sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)``), which the hand-written
    backward of :mod:`draw_tf.model.fused_backward` keeps.
  """
  i, f, g, o = tf.split(gates, 4, axis=-1)
  i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
  c = f * c + i * g
  h = o * tf.tanh(c)
  if return_activations:
    return h, c, tf.concat([i, f, g, o], axis=-1)
  return h, c


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LSTMCell(keras.layers.Layer):
  """An LSTM cell whose four gates come from one matmul on ``[inputs, h]``.

  ``gates = [inputs, h] @ kernel + bias`` split as (input, forget, cell, output),
  the Keras gate order. The input rows of the kernel are Glorot-uniform, the
  recurrent rows orthogonal, and the forget-gate bias starts at 1.

  Under a mixed-precision dtype policy (``mixed_bfloat16``, ``mixed_float16``)
  only the gate matmul runs in the policy's compute dtype; the gate
  nonlinearities and the states ``h`` and ``c`` stay float32, so the
  recurrence accumulates in full precision over the ``T`` steps.

  Args:
    units: state size.

  Call args:
    inputs: ``[batch, input_dim]`` (any float dtype).
    states: ``(h, c)``, each ``[batch, units]`` float32.

  Returns:
    ``(h, (h, c))`` with the new states, float32.
  """

  def __init__(self, units: int, **kwargs):
    # Inputs and states are cast here, not by Keras's autocast (which would
    # also cast the float32 states to the compute dtype).
    kwargs.setdefault("autocast", False)
    super().__init__(**kwargs)
    self.units = int(units)
    self.input_dim = None

  def build(self, input_shape):
    self.input_dim = int(input_shape[-1])
    units, input_dim = self.units, self.input_dim

    def kernel_init(shape, dtype=None):
      w_in = keras.initializers.GlorotUniform()((input_dim, 4 * units), dtype=dtype)
      w_rec = keras.initializers.Orthogonal()((units, 4 * units), dtype=dtype)
      return keras.ops.concatenate([w_in, w_rec], axis=0)

    def bias_init(shape, dtype=None):
      return keras.ops.concatenate(
          [keras.ops.zeros((units,), dtype), keras.ops.ones((units,), dtype),
           keras.ops.zeros((2 * units,), dtype)], axis=0)

    self.kernel = self.add_weight(
        name="kernel", shape=(input_dim + units, 4 * units), initializer=kernel_init)
    self.bias = self.add_weight(name="bias", shape=(4 * units,), initializer=bias_init)

  def compute_output_shape(self, input_shape, states_shape=None):
    return (input_shape[0], self.units)

  def call(self, inputs, states):
    h, c = states
    dtype = self.compute_dtype
    x = tf.concat([tf.cast(inputs, dtype), tf.cast(h, dtype)], axis=-1)
    gates = tf.matmul(x, tf.cast(self.kernel, dtype))
    gates = tf.cast(gates, tf.float32) + tf.cast(self.bias, tf.float32)
    h, c = lstm_update(gates, c)
    return h, (h, c)

  def get_config(self):
    return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LSTMEncoder(LSTMCell):
  """The encoder LSTM (eq. 5): ``h_enc_t = LSTM_enc(h_enc_{t-1}, [r_t, context])``.

  Args:
    units: state size.

  Call args:
    glimpse: ``[batch, read_dim]`` the read ``r_t``.
    context: ``[batch, d]`` (``h_dec_{t-1}``), or ``None`` when the encoder
      does not see the decoder.
    states: ``(h_enc, c_enc)``, each ``[batch, units]``.

  Returns:
    ``(h_enc, (h_enc, c_enc))``.
  """

  def build(self, glimpse_shape, context_shape=None):
    context = int(context_shape[-1]) if context_shape else 0
    super().build((None, int(glimpse_shape[-1]) + context))

  def call(self, glimpse, context, states):
    inputs = glimpse if context is None else tf.concat([glimpse, context], axis=-1)
    return super().call(inputs, states)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvFeatures(keras.layers.Layer):
  """Two 3x3 ``same`` ReLU convolutions applied to the read inputs.

  Args:
    filters: feature maps of each convolution.

  Call args:
    inputs: ``[batch, H, W, k]`` (image and/or error image stacked on channels).

  Returns:
    ``[batch, H, W, filters]``.
  """

  def __init__(self, filters: int = 8, **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.conv1 = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu", name="conv1")
    self.conv2 = keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu", name="conv2")

  def build(self, input_shape):
    self.conv1.build(input_shape)
    self.conv2.build((*input_shape[:-1], self.filters))

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], self.filters)

  def call(self, inputs):
    return self.conv2(self.conv1(inputs))

  def get_config(self):
    return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvEncoder(keras.layers.Layer):
  """Feed-forward convolutional encoder on the glimpse (replaces the encoder LSTM).

  The flat glimpse ``r_t`` is put back into its picture layout
  ``[batch, gh, gw, inputs * channels]`` (the read's inputs stacked on
  channels), passed through two 3x3 stride-2 ReLU convolutions, flattened,
  concatenated with ``context`` (``h_dec_{t-1}``, unless the encoder does not
  see the decoder) and mapped to ``units`` with a tanh.

  Args:
    units: output size (the ``h_enc_t`` fed to the posterior head).
    glimpse_shape: ``(inputs, gh, gw, channels)`` layout of the flat glimpse,
      as :class:`draw_tf.AttentionRead` / :class:`draw_tf.FullRead` produce it.
    filters: feature maps of each convolution.

  Call args:
    glimpse: ``[batch, inputs * gh * gw * channels]``.
    context: ``[batch, d]`` or ``None``.
    states: ``(h_enc, c_enc)``; only passed through (a feed-forward encoder
      has no state), so that both encoders share one signature.

  Returns:
    ``(h_enc, (h_enc, c_enc))`` with ``h_enc`` ``[batch, units]``.
  """

  def __init__(self, units: int, glimpse_shape=(2, 2, 2, 1), filters: int = 8, **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)
    self.glimpse_shape = tuple(int(d) for d in glimpse_shape)
    self.filters = int(filters)
    self.conv1 = keras.layers.Conv2D(self.filters, 3, strides=2, padding="same", activation="relu",
                                     name="conv1")
    self.conv2 = keras.layers.Conv2D(self.filters, 3, strides=2, padding="same", activation="relu",
                                     name="conv2")
    self.dense = keras.layers.Dense(self.units, activation="tanh", name="dense")

  def _picture_shape(self):
    inputs, gh, gw, channels = self.glimpse_shape
    return (gh, gw, inputs * channels)

  def build(self, glimpse_shape=None, context_shape=None):
    gh, gw, k = self._picture_shape()
    self.conv1.build((None, gh, gw, k))
    h1, w1 = -(-gh // 2), -(-gw // 2)
    self.conv2.build((None, h1, w1, self.filters))
    flat = -(-h1 // 2) * -(-w1 // 2) * self.filters
    self.dense.build((None, flat + (int(context_shape[-1]) if context_shape else 0)))

  def compute_output_shape(self, glimpse_shape, context_shape=None, states_shape=None):
    return (glimpse_shape[0], self.units)

  def call(self, glimpse, context, states):
    inputs, gh, gw, channels = self.glimpse_shape
    picture = tf.reshape(glimpse, [-1, inputs, gh, gw, channels])
    picture = tf.reshape(tf.transpose(picture, [0, 2, 3, 1, 4]), [-1, gh, gw, inputs * channels])
    features = self.conv2(self.conv1(picture))
    flat = tf.reshape(features, [tf.shape(features)[0], -1])
    if context is not None:
      flat = tf.concat([flat, context], axis=-1)
    h = self.dense(flat)
    return h, (h, states[1])

  def get_config(self):
    return {**super().get_config(), "units": self.units,
            "glimpse_shape": list(self.glimpse_shape), "filters": self.filters}

