"""The training unroll with a hand-written backward pass (``backward="fused"``).

:func:`draw_tf.model.unroll.unroll` differentiated by autodiff is correct but slow on
a CPU: TensorFlow's gradient of a ``tf.while_loop`` pushes every intermediate
of every step onto a stack, pops it in the backward loop, and accumulates the
gradient of every weight inside the loop, one ``[in, out]`` matrix sum and one
weight-gradient GEMM per step and weight. ``docs/performance.md`` has the
profile: about 60 % of the step is outside the GEMMs.

:func:`unroll` computes the same thing, ``(c_T, mu, log_sd)`` of the posterior
unroll (eqs. 3-8), as one :func:`tf.custom_gradient`:

* the forward loop keeps, per step, only what the backward needs: the LSTM
  gate activations and cell states, the GEMM inputs, the read/write window
  pre-activations and the canvas before the step;
* the backward loop runs the recurrence backwards with the LSTM and
  reparameterisation gradients written out (below), and differentiates only
  the read and write filterbanks (small, pure functions of their window
  parameters) with a local ``GradientTape``;
* every weight gradient is **one GEMM over all ``T`` steps**
  (``[in, T * batch] x [T * batch, out]``) after the loop, instead of ``T``
  small GEMMs and ``T`` accumulations inside it.

LSTM backward (gates ``i, f, g, o`` after their nonlinearities,
``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``), for upstream ``dh``, ``dc``::

    dc  <- dc + dh * o * (1 - tanh(c_t)^2)
    d_o  = dh * tanh(c_t) * o (1 - o)       d_i = dc * g * i (1 - i)
    d_f  = dc * c_{t-1} * f (1 - f)         d_g = dc * i * (1 - g^2)
    dc_{t-1} = dc * f

Reparameterisation (eq. 6, ``z = mu + exp(log_sd) eps``): ``dmu = dz``,
``dlog_sd = dz * exp(log_sd) * eps`` (plus the KL's own gradients, which come
in through the ``mu`` and ``log_sd`` outputs).

Supported: the paper's DRAW (:func:`supported` says why not otherwise):
LSTM encoder seeing ``h_dec_{t-1}``, the standard prior, pixel reads of
``[x, x_hat]`` with attention or whole images, attention or whole-canvas
writes. ``tests/test_fused.py`` checks losses and every gradient against
autodiff on fixed noise.

Mixed precision (``mixed_bfloat16`` / ``mixed_float16``): the LSTM GEMMs, forward,
backward and the weight gradients, run in the compute dtype, as under
autodiff (the gradient of a cast is a cast); everything else is float32.
"""

from __future__ import annotations

import tensorflow as tf

from draw_tf.model import attention
from draw_tf.model import filterbank as fb
from draw_tf.model import layers
from draw_tf.model import variants


def supported(cell) -> str | None:
  """``None`` if :func:`unroll` computes ``cell``'s unroll, else why not (a sentence)."""
  reasons = variants.fused_backward_gaps(cell.variants)  # the "fused" column of variants.SWITCHES
  if reasons:
    return ("the fused backward covers the paper's DRAW only (not " + ", ".join(reasons) +
            "); it runs with autodiff")
  return None


def _mm(a, b, dtype, transpose_a=False, transpose_b=False):
  """``a @ b`` computed in ``dtype``, returned as float32."""
  out = tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype), transpose_a=transpose_a,
                  transpose_b=transpose_b)
  return tf.cast(out, tf.float32)


def lstm_backward(acts, c_prev, c, dh, dc):
  """Gradient of :func:`draw_tf.model.layers.lstm_update` (module docstring).

  Args:
    acts: ``[batch, 4u]`` gate activations of the step.
    c_prev: ``[batch, u]`` cell state before the step.
    c: ``[batch, u]`` cell state after it.
    dh, dc: ``[batch, u]`` upstream gradients of ``h`` and ``c`` after the step.

  Returns:
    ``(d_gates [batch, 4u], dc_prev [batch, u])``.
  """
  i, f, g, o = tf.split(acts, 4, axis=-1)
  tanh_c = tf.tanh(c)
  dc = dc + dh * o * (1.0 - tf.square(tanh_c))
  d_i = dc * g * i * (1.0 - i)
  d_f = dc * c_prev * f * (1.0 - f)
  d_g = dc * i * (1.0 - tf.square(g))
  d_o = dh * tanh_c * o * (1.0 - o)
  return tf.concat([d_i, d_f, d_g, d_o], axis=-1), dc * f


def attention_read(sources, raw, n: int):
  """The attention read of eq. 27 as elementwise products and sums.

  Computes what :meth:`draw_tf.model.attention.AttentionRead.read_from_params`
  computes (up to float32 rounding). The filterbank contractions are
  ``multiply`` + ``reduce_sum`` instead of batched matmuls: their inner sizes
  (``N`` = 2..5) are far too small for a GEMM, and under XLA the products fuse
  into the reductions.

  Args:
    sources: images ``[batch, H, W, C]`` to read (``x`` and ``x_hat``).
    raw: ``[batch, 5]`` raw window parameters (eq. 21).
    n: grid size ``N``.

  Returns:
    ``[batch, len(sources) * N * N * C]``, each glimpse flattened as (j, i, c).
  """
  _, height, width, channels = sources[0].shape
  gx, gy, sigma2, delta, gamma = fb.attention_params(raw, n, height, width)
  fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
  gamma = tf.reshape(gamma, [-1, 1, 1, 1])
  glimpses = []
  for x in sources:
    # cols[b, h, i, c] = sum_w x[b, h, w, c] Fx[b, i, w]
    cols = tf.reduce_sum(x[:, :, tf.newaxis] * fx[:, tf.newaxis, :, :, tf.newaxis], axis=3)
    # glimpse[b, j, i, c] = sum_h Fy[b, j, h] cols[b, h, i, c]
    glimpse = tf.reduce_sum(fy[:, :, :, tf.newaxis, tf.newaxis] * cols[:, tf.newaxis], axis=2)
    glimpses.append(tf.reshape(glimpse * gamma, [-1, n * n * channels]))
  return tf.concat(glimpses, axis=-1)


def attention_write(patch_flat, raw, n: int, image_shape):
  """The attention write of eq. 29, ``(1 / gamma) Fy^T w Fx``, as products and sums.

  Computes what :meth:`draw_tf.model.attention.AttentionWrite.write_from_params`
  computes (its first output), as :func:`attention_read` does for the read.

  Args:
    patch_flat: ``[batch, N * N * C]`` writing patch ``w``, (j, i, c).
    raw: ``[batch, 5]`` raw window parameters.
    n: grid size ``N``.
    image_shape: ``(H, W, C)``.

  Returns:
    ``[batch, H, W, C]``.
  """
  height, width, channels = image_shape
  gx, gy, sigma2, delta, gamma = fb.attention_params(raw, n, height, width)
  fx, fy = fb.filterbank(gx, gy, sigma2, delta, n, height, width)
  patch = tf.reshape(patch_flat, [-1, n, n, channels]) * tf.reshape(
      tf.math.reciprocal(gamma), [-1, 1, 1, 1])
  # rows[b, j, w, c] = sum_i w[b, j, i, c] Fx[b, i, w]
  rows = tf.reduce_sum(patch[:, :, :, tf.newaxis] * fx[:, tf.newaxis, :, :, tf.newaxis], axis=2)
  # canvas[b, h, w, c] = sum_j Fy[b, j, h] rows[b, j, w, c]
  return tf.reduce_sum(fy[:, :, :, tf.newaxis, tf.newaxis] * rows[:, :, tf.newaxis], axis=1)


def _weights(cell):
  """The cell's weights as tensors, in the order :func:`_unroll_fn` takes them."""
  read_params = [cell.reader.params.kernel, cell.reader.params.bias] if cell.read_attention else []
  if cell.write_attention:
    write = [cell.writer.patch.kernel, cell.writer.patch.bias,
             cell.writer.params.kernel, cell.writer.params.bias]
  else:
    write = [cell.writer.canvas.kernel, cell.writer.canvas.bias]
  variables = [*read_params, cell.encoder.kernel, cell.encoder.bias, cell.posterior_head.kernel,
               cell.posterior_head.bias, cell.decoder.kernel, cell.decoder.bias, *write]
  return variables


def unroll(cell, images, noise, products: bool = True):
  """The posterior unroll of ``cell`` with the hand-written backward.

  Args:
    cell: a built :class:`draw_tf.model.cell.DrawCell` with :func:`supported` ``None``.
    images: ``[batch, H, W, C]`` float32 in [0, 1].
    noise: ``[batch, T, latent_dim]`` standard normal ``eps_t``.
    products: filterbank contractions as products and sums
      (:func:`attention_read`, :func:`attention_write`; faster under XLA,
      which fuses them) or as the layers' batched matmuls (faster without).

  Returns:
    dict ``logits`` ``[batch, H, W, C]`` (``c_T``), ``mu`` and ``log_sd``
    ``[batch, T, latent_dim]``: what :meth:`draw_tf.DrawModel.unroll` returns.
  """
  variables = _weights(cell)
  tensors = [tf.convert_to_tensor(v) for v in variables]
  logits, mu, log_sd = _unroll_fn(cell, len(tensors), products)(images, noise, *tensors)
  return {"logits": logits, "mu": mu, "log_sd": log_sd}


# Over 80 lines: one closure over the step's shapes and weights holds the forward loop and its backward.
def _unroll_fn(cell, num_weights, products):
  """The :func:`tf.custom_gradient` function ``(images, noise, *weights) -> (c_T, mu, log_sd)``."""
  dtype = cell.encoder.compute_dtype
  latent = cell.latent_dim
  units_e, units_d = cell.encoder_units, cell.decoder_units
  read_dim = cell.read_dim
  image_shape = cell.image_shape

  def unpack(weights):
    weights = list(weights)
    w = {}
    if cell.read_attention:
      w["read_k"], w["read_b"] = weights[:2]
      weights = weights[2:]
    (w["enc_k"], w["enc_b"], w["post_k"], w["post_b"], w["dec_k"], w["dec_b"]) = weights[:6]
    if cell.write_attention:
      w["patch_k"], w["patch_b"], w["wpar_k"], w["wpar_b"] = weights[6:]
    else:
      w["canvas_k"], w["canvas_b"] = weights[6:]
    return w

  def read(images, canvas_prev, raw_read):
    x_hat = images - tf.sigmoid(canvas_prev)  # eq. 3
    if cell.read_attention and products:
      return attention_read((images, x_hat), raw_read, cell.read_size)  # eq. 4 (eq. 27)
    if cell.read_attention:
      return cell.reader.read_from_params(images, x_hat, raw_read)
    return cell.reader(images, x_hat)  # eq. 17

  def write(write_pre):
    """``(delta [batch, H, W, C], write_pre)`` from the write layer's pre-activations."""
    if cell.write_attention:
      patch, raw = write_pre[:, :-5], write_pre[:, -5:]
      if products:
        return attention_write(patch, raw, cell.write_size, image_shape)  # eq. 29
      return cell.writer.write_from_params(patch, raw)[0]
    return tf.reshape(write_pre, [-1, *image_shape])  # eq. 18

  def write_kernel(w):
    if cell.write_attention:
      return (tf.concat([w["patch_k"], w["wpar_k"]], axis=1),
              tf.concat([w["patch_b"], w["wpar_b"]], axis=0))
    return w["canvas_k"], w["canvas_b"]

  # Over 80 lines: the forward loop and grad share its per-step tensors; read against the docstring's maths.
  @tf.custom_gradient
  def fn(images, noise, *weights):
    w = unpack(weights)
    write_k, write_b = write_kernel(w)
    enc_k, dec_k = tf.cast(w["enc_k"], dtype), tf.cast(w["dec_k"], dtype)
    batch = tf.shape(images)[0]
    num_steps = noise.shape[1]
    eps_tm = tf.transpose(noise, [1, 0, 2])  # [T, batch, z]
    zeros = lambda units: tf.zeros([batch, units])
    # Per-step values the backward needs; the states have T + 1 entries
    # (entry 0 is the zero initial state), so step t reads its inputs at t.
    step_names = ("r", "acts_enc", "mu", "log_sd", "z", "acts_dec", "write_pre")
    state_names = ("h_enc", "c_enc", "h_dec", "c_dec")
    arrays = {n: tf.TensorArray(tf.float32, size=num_steps) for n in step_names}
    arrays.update({n: tf.TensorArray(tf.float32, size=num_steps + 1).write(0, zeros(
        units_e if n.endswith("enc") else units_d)) for n in state_names})

    def body(t, canvas, h_enc, c_enc, h_dec, c_dec, arrays):
      raw_read = tf.matmul(h_dec, w["read_k"]) + w["read_b"] if cell.read_attention else None
      r = read(images, canvas, raw_read)
      x_enc = tf.concat([r, h_dec, h_enc], axis=-1)  # eq. 5's inputs
      h_enc, c_enc, acts_enc = layers.lstm_update(_mm(x_enc, enc_k, dtype) + w["enc_b"], c_enc, True)
      post = tf.matmul(h_enc, w["post_k"]) + w["post_b"]
      mu, log_sd = tf.split(post, 2, axis=-1)
      z = mu + tf.exp(log_sd) * eps_tm[t]  # eq. 6
      x_dec = tf.concat([z, h_dec], axis=-1)
      h_dec, c_dec, acts_dec = layers.lstm_update(_mm(x_dec, dec_k, dtype) + w["dec_b"], c_dec, True)  # eq. 7
      write_pre = tf.matmul(h_dec, write_k) + write_b
      step = dict(r=r, acts_enc=acts_enc, mu=mu, log_sd=log_sd, z=z, acts_dec=acts_dec,
                  write_pre=write_pre)
      states = dict(h_enc=h_enc, c_enc=c_enc, h_dec=h_dec, c_dec=c_dec)
      arrays = {**{n: arrays[n].write(t, step[n]) for n in step_names},
                **{n: arrays[n].write(t + 1, states[n]) for n in state_names}}
      canvas = canvas + write(write_pre)  # eq. 8
      return t + 1, canvas, h_enc, c_enc, h_dec, c_dec, arrays

    loop = tf.while_loop(
        lambda t, *_: t < num_steps, body,
        (tf.constant(0), tf.zeros([batch, *image_shape]), zeros(units_e), zeros(units_e),
         zeros(units_d), zeros(units_d), arrays), maximum_iterations=num_steps)
    canvas, saved = loop[1], {n: a.stack() for n, a in loop[-1].items()}  # each [T (+1), batch, ...]
    mu = tf.transpose(saved["mu"], [1, 0, 2])
    log_sd = tf.transpose(saved["log_sd"], [1, 0, 2])

    # Over 80 lines: the backward loop is one tf.while_loop body, eqs. in the module docstring, step by step.
    def grad(g_logits, g_mu, g_log_sd):
      g_logits = tf.zeros_like(canvas) if g_logits is None else g_logits
      g_mu_tm = tf.transpose(tf.zeros_like(mu) if g_mu is None else g_mu, [1, 0, 2])
      g_log_sd_tm = tf.transpose(tf.zeros_like(log_sd) if g_log_sd is None else g_log_sd,
                                 [1, 0, 2])
      s = saved
      g_names = ("d_enc", "d_dec", "d_post", "d_write") + (("d_read",) if cell.read_attention else ())
      g_arrays = {n: tf.TensorArray(tf.float32, size=num_steps) for n in g_names}

      def back(t, canvas, g_canvas, g_h_enc, g_c_enc, g_h_dec, g_c_dec, g_arrays):
        # eq. 8: the write, through its filterbank; c_{t-1} = c_t - write_t.
        write_pre = s["write_pre"][t]
        with tf.GradientTape() as tape:
          tape.watch(write_pre)
          delta = write(write_pre)
        d_write = tape.gradient(delta, write_pre, output_gradients=g_canvas)
        canvas = canvas - delta
        g_h_dec = g_h_dec + tf.matmul(d_write, write_k, transpose_b=True)
        # eq. 7: the decoder LSTM.
        d_dec, g_c_dec = lstm_backward(s["acts_dec"][t], s["c_dec"][t], s["c_dec"][t + 1],
                                       g_h_dec, g_c_dec)
        g_x_dec = _mm(d_dec, dec_k, dtype, transpose_b=True)
        g_z, g_h_dec = g_x_dec[:, :latent], g_x_dec[:, latent:]
        # eq. 6: the reparameterised sample, and the posterior head.
        g_mu_t = g_z + g_mu_tm[t]
        g_log_sd_t = g_z * tf.exp(s["log_sd"][t]) * eps_tm[t] + g_log_sd_tm[t]
        d_post = tf.concat([g_mu_t, g_log_sd_t], axis=-1)
        g_h_enc = g_h_enc + tf.matmul(d_post, w["post_k"], transpose_b=True)
        # eq. 5: the encoder LSTM, on [r_t, h_dec_{t-1}, h_enc_{t-1}].
        d_enc, g_c_enc = lstm_backward(s["acts_enc"][t], s["c_enc"][t], s["c_enc"][t + 1],
                                       g_h_enc, g_c_enc)
        g_x_enc = _mm(d_enc, enc_k, dtype, transpose_b=True)
        g_r = g_x_enc[:, :read_dim]
        g_h_dec = g_h_dec + g_x_enc[:, read_dim:read_dim + units_d]
        g_h_enc = g_x_enc[:, read_dim + units_d:]
        values = dict(d_enc=d_enc, d_dec=d_dec, d_post=d_post, d_write=d_write)
        # eqs. 3-4: the read, through its filterbank and x_hat = x - sigmoid(c_{t-1}).
        with tf.GradientTape() as tape:
          tape.watch(canvas)
          if cell.read_attention:
            raw_read = tf.matmul(s["h_dec"][t], w["read_k"]) + w["read_b"]
            tape.watch(raw_read)
          else:
            raw_read = None
          r = read(images, canvas, raw_read)
        if cell.read_attention:
          g_canvas_read, d_read = tape.gradient(r, [canvas, raw_read], output_gradients=g_r)
          g_h_dec = g_h_dec + tf.matmul(d_read, w["read_k"], transpose_b=True)
          values["d_read"] = d_read
        else:
          g_canvas_read = tape.gradient(r, canvas, output_gradients=g_r)
        g_arrays = {n: g_arrays[n].write(t, values[n]) for n in g_names}
        return (t - 1, canvas, g_canvas + g_canvas_read, g_h_enc, g_c_enc, g_h_dec, g_c_dec,
                g_arrays)

      loop = tf.while_loop(
          lambda t, *_: t >= 0, back,
          (tf.constant(num_steps - 1), canvas, g_logits, zeros(units_e), zeros(units_e),
           zeros(units_d), zeros(units_d), g_arrays), maximum_iterations=num_steps)
      d = {n: a.stack() for n, a in loop[-1].items()}  # each [T, batch, ...]

      def weight_grad(inputs, d_out, in_dtype=tf.float32):
        """``(dK, db)``: one GEMM over all steps, ``[in, T * B] x [T * B, out]``."""
        flat_in = tf.reshape(inputs, [-1, inputs.shape[-1]])
        flat_d = tf.reshape(d_out, [-1, d_out.shape[-1]])
        return (_mm(flat_in, flat_d, in_dtype, transpose_a=True), tf.reduce_sum(flat_d, axis=0))

      h_dec_prev, h_dec_new = s["h_dec"][:-1], s["h_dec"][1:]
      grads = {}
      if cell.read_attention:
        grads["read_k"], grads["read_b"] = weight_grad(h_dec_prev, d["d_read"])
      x_enc = tf.concat([s["r"], h_dec_prev, s["h_enc"][:-1]], axis=-1)
      grads["enc_k"], grads["enc_b"] = weight_grad(x_enc, d["d_enc"], dtype)
      grads["post_k"], grads["post_b"] = weight_grad(s["h_enc"][1:], d["d_post"])
      x_dec = tf.concat([s["z"], h_dec_prev], axis=-1)
      grads["dec_k"], grads["dec_b"] = weight_grad(x_dec, d["d_dec"], dtype)
      write_gk, write_gb = weight_grad(h_dec_new, d["d_write"])
      if cell.write_attention:
        n_patch = w["patch_k"].shape[1]
        grads["patch_k"], grads["wpar_k"] = write_gk[:, :n_patch], write_gk[:, n_patch:]
        grads["patch_b"], grads["wpar_b"] = write_gb[:n_patch], write_gb[n_patch:]
      else:
        grads["canvas_k"], grads["canvas_b"] = write_gk, write_gb
      order = (["read_k", "read_b"] if cell.read_attention else []) + [
          "enc_k", "enc_b", "post_k", "post_b", "dec_k", "dec_b"] + (
          ["patch_k", "patch_b", "wpar_k", "wpar_b"] if cell.write_attention
          else ["canvas_k", "canvas_b"])
      assert len(order) == num_weights
      return (None, None, *[tf.cast(grads[n], weights[i].dtype) for i, n in enumerate(order)])

    return (canvas, mu, log_sd), grad

  return fn
