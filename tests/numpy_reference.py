"""Independent NumPy transcription of DRAW's equations, written with explicit
loops over the paper's 1-based indices, for tests to compare against.

Nothing here imports draw_tf: it is the reference, not the code under test.
"""

import math

import numpy as np


def attention_params(raw, n, height, width, bounded=False):
  """Eqs. 21-24 for one example: raw = (gx~, gy~, log sigma^2, log delta~, log gamma).

  ``bounded``: the classifier's window that stays on the image, gx~ -> tanh(gx~) (same
  for y) and exp(log delta~) -> 2 / (1 + exp(-log delta~)).
  """
  gx_t, gy_t, log_sigma2, log_delta_t, log_gamma = [float(v) for v in raw]
  a, b = width, height
  if bounded:
    gx_t, gy_t = math.tanh(gx_t), math.tanh(gy_t)
  gx = (a + 1) / 2 * (gx_t + 1)
  gy = (b + 1) / 2 * (gy_t + 1)
  scale = 2 / (1 + math.exp(-log_delta_t)) if bounded else math.exp(log_delta_t)
  delta = (max(a, b) - 1) / (n - 1) * scale
  return gx, gy, math.exp(log_sigma2), delta, math.exp(log_gamma)


def filterbank(gx, gy, sigma2, delta, n, height, width, guard=1e-4):
  """Eqs. 19-20 and 25-26 for one example; returns Fx [n, width], Fy [n, height]."""
  fx = np.zeros((n, width))
  fy = np.zeros((n, height))
  for i in range(1, n + 1):
    mu_x = gx + (i - n / 2 - 0.5) * delta  # eq. 19
    for a in range(1, width + 1):
      fx[i - 1, a - 1] = math.exp(-((a - mu_x) ** 2) / (2 * sigma2))  # eq. 25
  for j in range(1, n + 1):
    mu_y = gy + (j - n / 2 - 0.5) * delta  # eq. 20
    for b in range(1, height + 1):
      fy[j - 1, b - 1] = math.exp(-((b - mu_y) ** 2) / (2 * sigma2))  # eq. 26
  fx /= np.maximum(fx.sum(axis=1, keepdims=True), guard)
  fy /= np.maximum(fy.sum(axis=1, keepdims=True), guard)
  return fx, fy


def read(image, fx, fy, gamma):
  """gamma * Fy x Fx^T for each channel; image [H, W, C] -> [n, n, C]."""
  return np.stack([gamma * fy @ image[:, :, c] @ fx.T for c in range(image.shape[-1])], -1)


def write(patch, fx, fy, gamma):
  """(1 / gamma) Fy^T w Fx for each channel; patch [n, n, C] -> [H, W, C]."""
  return np.stack([fy.T @ patch[:, :, c] @ fx / gamma for c in range(patch.shape[-1])], -1)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def lstm(x, h, c, kernel, bias):
  """Fused-gate LSTM step, gate order (i, f, g, o)."""
  gates = np.concatenate([x, h], -1) @ kernel + bias
  i, f, g, o = np.split(gates, 4, axis=-1)
  c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
  h = sigmoid(o) * np.tanh(c)
  return h, c


def kl_standard_normal(mu, log_sd):
  """Closed-form KL(N(mu, sd^2) || N(0, 1)) elementwise."""
  sd2 = np.exp(2 * log_sd)
  return 0.5 * (mu**2 + sd2 - 1.0) - log_sd


def bernoulli_nll(x, logits):
  """-log Bernoulli(x | sigmoid(logits)), elementwise, written the obvious way."""
  p = sigmoid(logits)
  return -(x * np.log(p) + (1 - x) * np.log(1 - p))


def kl_normal(mu_q, log_sd_q, mu_p, log_sd_p):
  """Closed-form KL(N(mu_q, sd_q^2) || N(mu_p, sd_p^2)) elementwise."""
  return (log_sd_p - log_sd_q
          + (np.exp(2 * log_sd_q) + (mu_q - mu_p) ** 2) / (2 * np.exp(2 * log_sd_p)) - 0.5)


def relu(x):
  return np.maximum(x, 0.0)


def conv2d_same(x, kernel, bias, stride=1):
  """Cross-correlation with TensorFlow's 'SAME' padding, written as loops.

  x [H, W, Cin], kernel [kh, kw, Cin, Cout] -> [ceil(H / stride), ceil(W / stride), Cout].
  The padding total is max((out - 1) * stride + k - in, 0), the smaller half first.
  """
  h, w, cin = x.shape
  kh, kw, _, cout = kernel.shape
  oh, ow = -(-h // stride), -(-w // stride)
  ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - w, 0)
  padded = np.zeros((h + ph, w + pw, cin))
  padded[ph // 2:ph // 2 + h, pw // 2:pw // 2 + w] = x
  out = np.zeros((oh, ow, cout))
  for i in range(oh):
    for j in range(ow):
      window = padded[i * stride:i * stride + kh, j * stride:j * stride + kw]
      for o in range(cout):
        out[i, j, o] = np.sum(window * kernel[..., o]) + bias[o]
  return out


def draw_negative_elbo(w, images, noise, *, num_steps, read_size, write_size,
                       read_attention, write_attention, encoder_sees_decoder=True,
                       read_inputs="image_and_error", read_features="pixels",
                       conv_concat_image=True, encoder="lstm", prior="standard"):
  """The whole DRAW forward pass (Gregor et al. 2015, eqs. 3-12) for a batch, in NumPy.

  The keyword switches after ``write_attention`` are the research variants
  (their defaults are the paper's DRAW): the encoder input without
  ``h_dec``, what the read sees, two ReLU convolutions before the read, a
  feed-forward convolutional encoder, a learned prior ``p(z_t | h_dec_{t-1})``.

  Args:
    w: dict of NumPy weights: enc_kernel, enc_bias, dec_kernel, dec_bias,
      post_kernel, post_bias, and read_params_{kernel,bias} / write_patch_*,
      write_params_* or write_canvas_* as the variant needs; feat1_*, feat2_*
      (conv read features), encconv1_*, encconv2_*, encdense_* (conv
      encoder), prior_* (learned prior).
    images: [batch, H, W, C]; noise: [batch, T, z].

  Returns:
    (recon [batch], kl [batch]) in nats.
  """
  batch, height, width, channels = images.shape
  recon = np.zeros(batch)
  kl = np.zeros(batch)
  for b in range(batch):
    x = images[b].astype(np.float64)
    canvas = np.zeros_like(x)
    units_e = w["enc_bias"].shape[0] // 4 if encoder == "lstm" else 1
    units_d = w["dec_bias"].shape[0] // 4
    h_enc, c_enc = np.zeros(units_e), np.zeros(units_e)
    h_dec, c_dec = np.zeros(units_d), np.zeros(units_d)
    for t in range(num_steps):
      x_hat = x - sigmoid(canvas)
      sources = {"image_and_error": [x, x_hat], "error_only": [x_hat],
                 "image_only": [x]}[read_inputs]
      if read_features == "conv":
        raw = np.concatenate(sources, axis=-1)
        maps = relu(conv2d_same(raw, w["feat1_kernel"], w["feat1_bias"]))
        maps = relu(conv2d_same(maps, w["feat2_kernel"], w["feat2_bias"]))
        sources = [np.concatenate([raw, maps], axis=-1) if conv_concat_image else maps]
      if read_attention:
        n = read_size
        p = attention_params(h_dec @ w["read_params_kernel"] + w["read_params_bias"],
                             n, height, width)
        fx, fy = filterbank(*p[:4], n, height, width)
        glimpses = [read(s, fx, fy, p[4]) for s in sources]
      else:
        glimpses = sources
      r = np.concatenate([g.ravel() for g in glimpses])
      if encoder == "lstm":
        enc_in = np.concatenate([r, h_dec]) if encoder_sees_decoder else r
        h_enc, c_enc = lstm(enc_in, h_enc, c_enc, w["enc_kernel"], w["enc_bias"])
      else:  # feed-forward: glimpses stacked on channels, two stride-2 convs, dense
        picture = np.concatenate(glimpses, axis=-1)
        f = relu(conv2d_same(picture, w["encconv1_kernel"], w["encconv1_bias"], stride=2))
        f = relu(conv2d_same(f, w["encconv2_kernel"], w["encconv2_bias"], stride=2)).ravel()
        if encoder_sees_decoder:
          f = np.concatenate([f, h_dec])
        h_enc = np.tanh(f @ w["encdense_kernel"] + w["encdense_bias"])
      post = h_enc @ w["post_kernel"] + w["post_bias"]
      mu, log_sd = np.split(post, 2)
      z = mu + np.exp(log_sd) * noise[b, t]
      if prior == "learned":  # p(z_t | h_dec_{t-1})
        mu_p, log_sd_p = np.split(h_dec @ w["prior_kernel"] + w["prior_bias"], 2)
        kl[b] += kl_normal(mu, log_sd, mu_p, log_sd_p).sum()
      else:
        kl[b] += kl_standard_normal(mu, log_sd).sum()
      h_dec, c_dec = lstm(z, h_dec, c_dec, w["dec_kernel"], w["dec_bias"])
      if write_attention:
        n = write_size
        p = attention_params(h_dec @ w["write_params_kernel"] + w["write_params_bias"],
                             n, height, width)
        fx, fy = filterbank(*p[:4], n, height, width)
        patch = (h_dec @ w["write_patch_kernel"] + w["write_patch_bias"]).reshape(n, n, channels)
        canvas = canvas + write(patch, fx, fy, p[4])
      else:
        canvas = canvas + (h_dec @ w["write_canvas_kernel"]
                           + w["write_canvas_bias"]).reshape(height, width, channels)
    recon[b] = bernoulli_nll(x, canvas).sum()
  return recon, kl
