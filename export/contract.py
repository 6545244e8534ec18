"""The signature contract of an exported DRAW decoder, in one place.

What :mod:`draw_tf.export.export_lib` writes and :mod:`draw_tf.export.sampler` checks when it
loads an artifact (``README.md``, "Use it on a phone"):

- ``generate(noise: float32 [batch, T, latent_dim])`` returns ``images``
  ``[batch, H, W, C]``, ``canvases`` ``[batch, T, H, W, C]`` and
  ``write_windows`` ``[batch, T, 3]``, all float32.
- ``sample(num_samples: int32 scalar)`` returns the same outputs.
- The decoder config (:func:`decoder_config`) is stored as JSON in a TFLite
  file's metadata entry :data:`CONFIG_NAME` and in a SavedModel folder at
  :data:`SAVED_MODEL_CONFIG`.
- An export folder holds :data:`SAVED_MODEL_DIR` and :data:`MANIFEST`.

This module is plain Python (no TensorFlow); both sides import it and neither
imports the other's private names.
"""

from __future__ import annotations

import json
import os

GENERATE = "generate"
SAMPLE = "sample"
NOISE_INPUT = "noise"
NUM_SAMPLES_INPUT = "num_samples"
NOISE_DTYPE = "float32"
NUM_SAMPLES_DTYPE = "int32"
OUTPUTS = ("images", "canvases", "write_windows")
OUTPUT_DTYPE = "float32"
# Name of the JSON model description inside a .tflite file (flatbuffer
# metadata) and inside a SavedModel folder (assets.extra/).
CONFIG_NAME = "draw_tf_decoder_config"
SAVED_MODEL_CONFIG = os.path.join("assets.extra", "draw_tf_decoder_config.json")
# The SavedModel folder and the manifest inside an export folder.
SAVED_MODEL_DIR = "saved_model"
MANIFEST = "manifest.json"


def decoder_config(model) -> dict:
  """The facts about a :class:`draw_tf.DrawModel` that a sampler needs."""
  cell = model.cell
  return {"image_shape": list(model.image_shape), "num_steps": model.num_steps,
          "latent_dim": model.latent_dim, "decoder_units": cell.decoder_units,
          "write_size": cell.write_size, "write_attention": cell.write_attention}


def encode_config(config: dict) -> bytes:
  """The metadata payload (UTF-8 JSON, sorted keys) of a decoder config."""
  return json.dumps(config, sort_keys=True).encode()


def decode_config(payload: bytes) -> dict:
  """Inverse of :func:`encode_config`."""
  return json.loads(bytes(payload).decode("utf-8"))


def noise_shape(config: dict, batch_size: int = -1) -> list:
  """Shape of ``generate``'s input: ``[batch_size, T, latent_dim]`` (-1: dynamic)."""
  return [batch_size, config["num_steps"], config["latent_dim"]]


def output_shapes(config: dict, batch_size: int = -1) -> dict:
  """Output name -> shape list (-1: dynamic batch size) for a decoder ``config``."""
  h, w, c = config["image_shape"]
  t = config["num_steps"]
  return {"images": [batch_size, h, w, c], "canvases": [batch_size, t, h, w, c],
          "write_windows": [batch_size, t, 3]}


def generate_inputs(config: dict, batch_size: int = -1) -> dict:
  """The manifest's description of ``generate``'s inputs."""
  return {NOISE_INPUT: {"dtype": NOISE_DTYPE, "shape": noise_shape(config, batch_size)}}


def signatures(config: dict) -> dict:
  """The manifest's ``signatures`` entry: inputs and outputs of both signatures."""
  outputs = {k: {"dtype": OUTPUT_DTYPE, "shape": s} for k, s in output_shapes(config).items()}
  return {
      GENERATE: {"inputs": generate_inputs(config), "outputs": outputs},
      SAMPLE: {"inputs": {NUM_SAMPLES_INPUT: {"dtype": NUM_SAMPLES_DTYPE, "shape": []}},
               "outputs": outputs},
  }


def check_noise_input(path: str, dtype_name: str, shape: list) -> None:
  """Raises ``ValueError`` unless ``generate``'s input is float32 ``[-1, T, latent_dim]``."""
  if dtype_name != NOISE_DTYPE or len(shape) != 3 or shape[0] != -1:
    raise ValueError(
        f"{path}: input '{NOISE_INPUT}' is {dtype_name} {shape}, expected {NOISE_DTYPE} "
        "[-1, T, latent_dim] with a dynamic batch size.")


def check_outputs(path: str, outputs: dict, config: dict) -> None:
  """Checks ``generate``'s outputs against ``config``; raises ``ValueError`` naming the problem.

  Args:
    path: the artifact, for the message.
    outputs: ``{name: (dtype_name, shape list with -1 for a dynamic size)}``.
    config: the decoder config (``image_shape``, ``num_steps``).
  """
  missing = [k for k in OUTPUTS if k not in outputs]
  if missing:
    raise ValueError(
        f"{path}: signature '{GENERATE}' has outputs {sorted(outputs)}, missing {missing}; "
        f"a DRAW decoder exported by draw-export returns {list(OUTPUTS)}.")
  for name, want in output_shapes(config).items():
    dtype, shape = outputs[name]
    if dtype != OUTPUT_DTYPE or shape != want:
      raise ValueError(
          f"{path}: output '{name}' of signature '{GENERATE}' is {dtype} {shape}, "
          f"expected {OUTPUT_DTYPE} {want}.")
