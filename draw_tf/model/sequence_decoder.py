"""Fast generation from the DRAW prior: the decoder over all T steps as one sequence computation.

In generation the decoder never looks at the canvas (Gregor et al. 2015, eqs. 7-8):
``h_dec_t = LSTM_dec(h_dec_{t-1}, z_t)`` depends only on
``z_1..z_t``. So instead of ``T`` full steps (LSTM, write, canvas add) the
sampler

1. runs the decoder LSTM over the noise sequence: the input projection
   ``z_t @ W`` of a block of steps is one matmul and each step only adds
   ``h_{t-1} @ U`` (:func:`decoder_hidden_states`);
2. writes every step in one batched pass over ``[N * T, units]`` (the model's
   own write layer, called once on all rows);
3. gets all canvases ``c_t = sum_{s <= t} write(h_s)`` as one cumulative sum.

The result equals :meth:`draw_tf.DrawModel.decode` (the step-by-step unroll of
:mod:`draw_tf.model.unroll`) up to float rounding; ``tests/test_sampling.py`` checks
it. The gate maths is :func:`draw_tf.model.layers.lstm_update`, the same function the
training cell calls.

The recurrence runs in a ``tf.while_loop`` over blocks of
``steps_per_iteration`` steps (unrolled inside a block). That keeps one copy of
the recurrent weights in a TFLite model: an unrolled T-step graph makes the
XNNPACK delegate pack a separate copy of ``U`` for every step (64 MB at the
paper's size, 64 steps x 1 MB), which no longer fits in the CPU cache and is
slower. The per-step hidden states leave the loop through
``XlaDynamicUpdateSlice`` (TFLite builtin ``DYNAMIC_UPDATE_SLICE``,
:func:`draw_tf.model.workarounds.dynamic_update_slice`); a ``TensorArray`` does not
convert to builtin ops with a dynamic batch size, which is why this loop is not
:func:`draw_tf.model.unroll.unroll`.

Example::

    from draw_tf.model import sequence_decoder
    model = draw_tf.DrawModel(num_steps=64)
    out = sequence_decoder.decode_fused(model, noise)   # noise [N, 64, 100] float32
    out["images"]    # [N, 28, 28, 1], sigmoid(c_T)
    out["canvases"]  # [N, 64, 28, 28, 1], sigmoid(c_t)
    out["windows"]   # [N, 64, 4], as DrawModel.decode
"""

from __future__ import annotations

import tensorflow as tf

from draw_tf.model import inputs as input_checks
from draw_tf.model import layers
from draw_tf.model import workarounds
from draw_tf.errors import ConfigError

# Steps unrolled inside one iteration of the recurrence loop. Fewer iterations
# mean less loop overhead (TFLite copies the loop state between iterations);
# more unrolled steps mean more copies of the packed recurrent weights in the
# XNNPACK delegate. See tools/bench_sample.py and docs/performance.md ("Sampling speed").
DEFAULT_STEPS_PER_ITERATION = 4


def _block_size(num_steps: int, steps_per_iteration: int) -> int:
  """The largest divisor of ``num_steps`` that is at most ``steps_per_iteration``."""
  k = max(1, min(int(steps_per_iteration), num_steps))
  while num_steps % k:
    k -= 1
  return k


def blocked_recurrence(block_step, num_steps: int, batch, units: int, carry,
                       steps_per_iteration: int = DEFAULT_STEPS_PER_ITERATION):
  """Runs a recurrence over ``T`` steps in a ``tf.while_loop`` over blocks of steps; keeps every ``h_t``.

  The loop of :func:`decoder_hidden_states` (DRAW) and of
  :func:`draw_tf.model.caption_decoder.decode_captioned` (alignDRAW): each iteration
  runs one block of steps (unrolled inside ``block_step``) and writes their states
  with ``DYNAMIC_UPDATE_SLICE`` (no ``TensorArray``, see the module docstring).

  Args:
    block_step: ``block_step(i, block, carry) -> (outputs, carry)``: runs steps
      ``i * block .. (i + 1) * block - 1`` (``i`` a scalar int32 tensor) and returns
      their ``h_t`` as a list of ``block`` tensors ``[batch, units]`` and the new carry.
    num_steps: ``T``.
    batch: the batch size (a scalar tensor or int).
    units: size of ``h_t``.
    carry: the loop state before step 1 (a tuple of tensors, e.g. ``(h_0, c_0)``).
    steps_per_iteration: steps per block (rounded down to a divisor of ``T``).

  Returns:
    ``[batch, T, units]``: ``h_t`` for every step.
  """
  block = _block_size(num_steps, steps_per_iteration)
  num_blocks = num_steps // block

  def body(i, carry, states):
    outputs, carry = block_step(i, block, carry)
    states = workarounds.dynamic_update_slice(
        states, tf.stack(outputs)[tf.newaxis], tf.stack([i, 0, 0, 0]))
    return i + 1, carry, states

  states = tf.zeros([num_blocks, block, batch, units])
  _, _, states = tf.while_loop(
      lambda i, *_: i < num_blocks, body, (tf.constant(0), tuple(carry), states),
      maximum_iterations=num_blocks)
  # [num_blocks, block, batch, units] -> [batch, T, units]
  return tf.transpose(tf.reshape(states, [num_steps, batch, units]), [1, 0, 2])


def noise_blocks(noise, num_steps: int, steps_per_iteration: int = DEFAULT_STEPS_PER_ITERATION):
  """``[batch, T, d]`` -> ``[num_blocks, block * batch, d]``, time-major inside each block."""
  block = _block_size(num_steps, steps_per_iteration)
  return tf.reshape(tf.transpose(noise, [1, 0, 2]), [num_steps // block, -1, int(noise.shape[2])])


def decoder_hidden_states(noise, input_kernel, recurrent_kernel, bias,
                          steps_per_iteration: int = DEFAULT_STEPS_PER_ITERATION):
  """Runs the decoder LSTM over a whole noise sequence (eq. 7 for t = 1..T).

  Same cell as :class:`draw_tf.LSTMCell`: ``gates = z_t @ W + h_{t-1} @ U + b``
  split as (input, forget, cell, output); all states start at 0.

  Args:
    noise: ``[batch, T, latent_dim]`` float32 prior samples ``z_t``.
    input_kernel: ``W``, ``[latent_dim, 4 * units]``.
    recurrent_kernel: ``U``, ``[units, 4 * units]``.
    bias: ``[4 * units]``.
    steps_per_iteration: steps unrolled per loop iteration (rounded down to a
      divisor of ``T``); the input projection of these steps is one matmul.

  Returns:
    ``[batch, T, units]``: ``h_dec_t`` for every step.
  """
  noise = tf.convert_to_tensor(noise, tf.float32)
  num_steps = int(noise.shape[1])
  units = int(recurrent_kernel.shape[0])
  batch = tf.shape(noise)[0]
  blocks = noise_blocks(noise, num_steps, steps_per_iteration)  # [num_blocks, block * batch, latent_dim]

  def block_step(i, block, carry):
    h, c = carry
    # One matmul for the input projection of `block` steps: [block * batch, 4u].
    x = tf.matmul(tf.gather(blocks, i), input_kernel) + bias
    outputs = []
    for x_t in tf.unstack(tf.reshape(x, [block, batch, 4 * units]), num=block):
      h, c = layers.lstm_update(x_t + tf.matmul(h, recurrent_kernel), c)  # the only recurrent work
      outputs.append(h)
    return outputs, (h, c)

  zeros = tf.zeros([batch, units])
  return blocked_recurrence(block_step, num_steps, batch, units, (zeros, zeros), steps_per_iteration)


def write_steps(model, hidden) -> dict:
  """Every step's write in one pass over ``[N * T, units]``, and the canvases as one cumulative sum.

  Args:
    model: a :class:`draw_tf.DrawModel` (its cell's ``writer``).
    hidden: ``[N, T, decoder_units]``: ``h_dec_t`` for every step.

  Returns:
    dict with ``images`` ``[N, H, W, C]`` = ``sigmoid(c_T)``, ``canvases``
    ``[N, T, H, W, C]`` = ``sigmoid(c_t)`` and ``windows`` ``[N, T, 4]``.
  """
  cell = model.cell
  batch, num_steps = tf.shape(hidden)[0], model.num_steps
  delta, window = cell.writer(tf.reshape(hidden, [-1, cell.decoder_units]))
  delta = tf.reshape(tf.cast(delta, tf.float32), [batch, num_steps, *model.image_shape])
  canvases = tf.sigmoid(tf.cumsum(delta, axis=1))  # c_t = sum_{s <= t} write(h_s)
  return {"images": canvases[:, -1], "canvases": canvases,
          "windows": tf.reshape(tf.cast(window, tf.float32), [batch, num_steps, 4])}


def check_standard_prior(model) -> None:
  """Refuses models whose prior is learned: their ``z_t`` depends on ``h_dec_{t-1}``.

  The fused decoder projects the whole noise sequence at once, which needs
  ``z_t`` known before the recurrence runs (``z_t = eps_t`` under ``N(0, I)``).

  Raises:
    ConfigError: ``model.cell.variants.prior`` is not ``standard``.
  """
  if model.cell.variants.prior != "standard":
    raise ConfigError(
        f"The fused sampler (and the SavedModel / TFLite export built on it) supports only the "
        f"standard N(0, I) prior; this model has prior={model.cell.variants.prior!r}, whose z_t depends on "
        "the previous decoder state. Sample it with DrawModel.generate() or draw-sample on its "
        "training workdir instead.")


def decode_fused(model, noise, steps_per_iteration: int = DEFAULT_STEPS_PER_ITERATION):
  """Generation with the fused decoder; the same outputs as ``model.decode``.

  Args:
    model: a :class:`draw_tf.DrawModel` (only its decoder and writer are used).
    noise: ``[N, T, latent_dim]`` float32, ``z_t ~ N(0, I)``.
    steps_per_iteration: see :func:`decoder_hidden_states`.

  Returns:
    dict with ``images`` ``[N, H, W, C]`` = ``sigmoid(c_T)``, ``canvases``
    ``[N, T, H, W, C]`` = ``sigmoid(c_t)`` and ``windows`` ``[N, T, 4]``
    (centre x, centre y, stride, sigma in 0-based pixels).
  """
  cell = model.cell
  check_standard_prior(model)
  noise = input_checks.check_noise(noise, model.num_steps, model.latent_dim)
  if noise.shape.rank is None:
    raise ValueError("noise must have a known rank: [batch, num_steps, latent_dim].")
  kernel = tf.cast(cell.decoder.kernel, tf.float32)
  latent_dim = model.latent_dim
  hidden = decoder_hidden_states(
      noise, kernel[:latent_dim], kernel[latent_dim:], tf.cast(cell.decoder.bias, tf.float32),
      steps_per_iteration)
  return write_steps(model, hidden)
