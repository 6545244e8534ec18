"""The T-step loop of DRAW, written once.

Every use of the recurrence runs :func:`unroll`: training and evaluation
(``z_t`` from the posterior), generation (``z_t`` from the prior), the
reconstruction GIFs, and compression (``z_t`` from quantised codes). What
differs between them is only where ``z_t`` comes from, a *latent* function
of the step and the state:

    latent(t, state) -> (z_t, state, values)

where ``values`` are per-step tensors it can offer for recording (e.g. the
posterior's ``mu``). :func:`unroll` then draws with ``z_t`` (eqs. 7-8,
:meth:`draw_tf.model.cell.DrawCell.draw`), and records what it is asked to:
any of the latent's values, ``canvas`` (``sigmoid(c_t)``) and ``window``
(the write window).

The steps run in a ``tf.while_loop``, so a traced graph (and an XLA program)
holds one step whatever ``T`` is. Two other loops run the same recurrence, each
for a reason this one cannot serve, and each is checked against it:

- :mod:`draw_tf.model.sequence_decoder` (generation in the exports) loops over
  blocks of steps and runs only the decoder LSTM inside, writing every step
  afterwards in one batched pass: TFLite has no ``TensorArray`` with a dynamic
  batch size (its states leave through ``DYNAMIC_UPDATE_SLICE``), and one loop body
  keeps one copy of the recurrent weights in the converted model
  (``tests/test_sampling.py``).
- :mod:`draw_tf.model.fused_backward` (training with ``backward="fused"``) has a
  forward loop that saves the per-step tensors its hand-written gradient needs and
  a backward loop that runs the steps in reverse inside ``tf.custom_gradient``;
  this loop's autodiff keeps other tensors and would not give the same bits
  (``tests/test_fused.py`` compares losses and gradients).

Example::

    state, out = unroll.unroll(model.cell, model.num_steps, model.cell.initial_state(n),
                               unroll.posterior(model.cell, images, noise), record=("mu", "log_sd"))
    out["mu"]   # [n, T, latent_dim]
"""

from __future__ import annotations

from typing import Callable, Iterable

import tensorflow as tf


def unroll(cell, num_steps: int, state, latent: Callable, record: Iterable[str] = ()):
  """Runs ``num_steps`` DRAW steps of ``cell`` from ``state``.

  Args:
    cell: a :class:`draw_tf.model.cell.DrawCell`.
    num_steps: how many steps (``T``, or fewer).
    state: the :class:`draw_tf.model.cell.DrawState` to start from (usually
      ``cell.initial_state(batch)``).
    latent: ``latent(t, state) -> (z [batch, latent_dim], state, values)``;
      ``t`` is the 0-based step (a scalar int32 tensor), ``values`` a dict.
    record: names of the per-step tensors to keep: keys of the latent's
      ``values``, ``"canvas"`` (``sigmoid(c_t)``) or ``"window"``.

  Returns:
    ``(state, recorded)``: the state after the last step and a dict of the
    recorded tensors, each ``[batch, num_steps, ...]`` float32.
  """
  record = tuple(record)
  shapes = cell.record_shapes()
  arrays = {name: tf.TensorArray(tf.float32, size=num_steps, element_shape=[None, *shapes[name]])
            for name in record}

  def body(t, state, arrays):
    z, state, values = latent(t, state)
    window, state = cell.draw(z, state)
    if "canvas" in record:
      values = {**values, "canvas": tf.sigmoid(state.canvas)}
    if "window" in record:
      values = {**values, "window": tf.cast(window, tf.float32)}
    return t + 1, state, {name: arrays[name].write(t, values[name]) for name in record}

  _, state, arrays = tf.while_loop(
      lambda t, *_: t < num_steps, body, (tf.constant(0), state, arrays),
      maximum_iterations=num_steps)
  return state, {name: _batch_major(array.stack()) for name, array in arrays.items()}


def _batch_major(stacked):
  """``[T, batch, ...]`` -> ``[batch, T, ...]``."""
  return tf.transpose(stacked, [1, 0, *range(2, stacked.shape.rank)])


def time_major(noise):
  """``[batch, T, d]`` -> ``[T, batch, d]`` float32 (indexing step ``t`` is then one gather)."""
  return tf.transpose(tf.convert_to_tensor(noise, tf.float32), [1, 0, 2])


def posterior(cell, images, noise):
  """Latent of inference: ``z_t = mu_t + exp(log_sd_t) * eps_t`` (eq. 6).

  Args:
    cell: a :class:`draw_tf.model.cell.DrawCell`.
    images: ``[batch, H, W, C]`` float32 in [0, 1].
    noise: ``[batch, T, latent_dim]`` standard normal ``eps_t``.

  Offers ``mu``, ``log_sd``, ``prior_mu`` and ``prior_log_sd`` for recording.
  """
  noise_tm = time_major(noise)

  def latent(t, state):
    q = cell.infer(images, state)
    z = q.mu + tf.exp(q.log_sd) * noise_tm[t]  # eq. 6: reparameterised sample
    values = {"mu": q.mu, "log_sd": q.log_sd, "prior_mu": q.prior_mu, "prior_log_sd": q.prior_log_sd}
    return z, state._replace(h_enc=q.h_enc, c_enc=q.c_enc), values

  return latent


def prior(cell, noise):
  """Latent of generation: ``z_t`` from the prior given ``eps_t`` (``noise`` ``[batch, T, latent_dim]``)."""
  noise_tm = time_major(noise)
  return lambda t, state: (cell.prior.sample(noise_tm[t], state.h_dec), state, {})


def quantised_posterior(cell, images, quant_step: float):
  """Latent of compression: ``z_t`` is the posterior mean rounded to a grid in the prior's units.

  ``codes_t = round((mu_t - mu^p_t) / sd^p_t / quant_step)`` and
  ``z_t = mu^p_t + sd^p_t * codes_t * quant_step``, so the decoder sees only
  what the codes carry. Offers ``codes`` (as float32) for recording.
  """
  def latent(t, state):
    q = cell.infer(images, state)
    loc, scale = cell.prior.loc_scale(state.h_dec)
    codes = tf.round((q.mu - loc) / scale / quant_step)
    z = loc + scale * codes * quant_step  # the decoder's latent, from the code alone
    return z, state._replace(h_enc=q.h_enc, c_enc=q.c_enc), {"codes": codes}

  return latent


def from_codes(cell, codes, num_coded: int, quant_step: float, noise):
  """Latent of decompression: ``z_t`` from ``codes`` for the coded steps, then from the prior.

  Args:
    cell: a :class:`draw_tf.model.cell.DrawCell`.
    codes: ``[batch, K, latent_dim]`` (any number type) from :func:`quantised_posterior`.
    num_coded: ``K``.
    quant_step: the grid's step.
    noise: ``[batch, T, latent_dim]`` standard normal ``eps_t`` for steps ``K + 1..T``.
  """
  codes_tm = time_major(tf.cast(codes, tf.float32))  # [K, batch, latent_dim]
  k_steps = int(num_coded)
  noise_tm = time_major(noise)

  def latent(t, state):
    loc, scale = cell.prior.loc_scale(state.h_dec)
    coded = loc + scale * codes_tm[tf.minimum(t, k_steps - 1)] * quant_step  # steps 1..K
    z = tf.where(t < k_steps, coded, cell.prior.sample(noise_tm[t], state.h_dec))  # then the prior
    return z, state, {}

  return latent
