"""Analytic cost of DRAW, computed from the model's settings.

Counts multiply-adds (MACs) of the dense algebra per image and step; one MAC is
2 FLOPs. Elementwise work (gates, exponentials of the filterbank) is not counted.
Training costs about 3x the forward pass (forward, and two products per matmul
in the backward pass).
"""

from __future__ import annotations

from draw_tf.model import variants


def forward_macs_per_step(image_shape, latent_dim=100, encoder_units=256, decoder_units=256,
                          read_size=2, write_size=5, read_attention=True, write_attention=True,
                          **kwargs) -> dict:
  """Multiply-adds of one forward step for one image, by part.

  Args: the :class:`draw_tf.DrawModel` keyword arguments, the research
  switches of :mod:`draw_tf.model.variants` at their defaults unless given (other
  keys ignored).

  Returns:
    dict part -> MACs.

  Raises:
    ValueError: convolutional read features or encoder (their FLOPs are not modelled).
  """
  v = variants.resolve(**variants.split(kwargs)[0])
  if v.read_features != "pixels" or v.encoder != "lstm":
    raise ValueError(
        "FLOP counts cover the LSTM encoder and pixel reads only; for read_features='conv' or "
        "encoder='conv' time the model with tools/benchmark.py's images/s instead.")
  h, w, c = (int(d) for d in image_shape)
  ue, ud, z = int(encoder_units), int(decoder_units), int(latent_dim)
  n_r, n_w = int(read_size), int(write_size)
  inputs = 2 if v.read_inputs == "image_and_error" else 1
  read_dim = inputs * (n_r * n_r * c if read_attention else h * w * c)
  parts = {
      "encoder_lstm": 4 * ue * (read_dim + (ud if v.encoder_sees_decoder else 0) + ue),
      "decoder_lstm": 4 * ud * (z + ud),
      "posterior": ue * 2 * z,
  }
  if v.prior == "learned":
    parts["prior"] = ud * 2 * z
  if read_attention:
    parts["read_params"] = ud * 5
    # Fy x Fx^T on each read input: contract width, then height.
    parts["read_filterbank"] = inputs * c * (h * w * n_r + n_r * h * n_r)
  if write_attention:
    parts["write_head"] = ud * (n_w * n_w * c + 5)
    # Fy^T w Fx: contract the patch with Fx, then with Fy.
    parts["write_filterbank"] = c * (n_w * n_w * w + h * n_w * w)
  else:
    parts["write_head"] = ud * h * w * c
  return parts


def train_flops_per_image(model_kwargs: dict, num_steps: int | None = None) -> float:
  """FLOPs of one training step per image: 3 x forward, 2 FLOPs per MAC, times T."""
  steps = int(num_steps if num_steps is not None else model_kwargs.get("num_steps", 64))
  return 3.0 * 2.0 * sum(forward_macs_per_step(**model_kwargs).values()) * steps


def lstm_gemm_shapes(model_kwargs: dict, batch_size: int) -> list:
  """``(m, k, n)`` of the LSTM matmuls in one training step (forward + backward).

  For each LSTM: forward ``[B, in + u] x [in + u, 4u]``, backward data
  ``[B, 4u] x [4u, in + u]`` and backward weights ``[in + u, B] x [B, 4u]``.
  """
  parts = forward_macs_per_step(**model_kwargs)
  shapes = []
  for name, units in (("encoder_lstm", model_kwargs.get("encoder_units", 256)),
                      ("decoder_lstm", model_kwargs.get("decoder_units", 256))):
    k = parts[name] // (4 * int(units))
    n = 4 * int(units)
    shapes += [(batch_size, k, n), (batch_size, n, k), (k, batch_size, n)]
  return shapes
