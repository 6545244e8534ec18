"""The signature contract of an exported DRAW decoder, in one place.

What :mod:`draw_tf.export.export_lib` writes and :mod:`draw_tf.export.sampler` checks when it
loads an artifact (``README.md``, "Use it on a phone"):

- ``generate(noise: float32 [batch, T, latent_dim])`` returns ``images``
  ``[batch, H, W, C]``, ``canvases`` ``[batch, T, H, W, C]`` and
  ``write_windows`` ``[batch, T, 4]``, all float32: each step's write window
  with the columns :data:`WINDOW_COLUMNS`, the same ``[N, T, 4]`` as
  ``DrawModel.generate``'s ``windows``. Exports of manifest format 1 returned
  only the first three columns (no ``sigma``); they still load
  (:func:`check_outputs`) and a sampler fills their ``sigma`` with NaN.
- ``sample(num_samples: int32 scalar)`` returns the same outputs.
- A caption-conditioned decoder (alignDRAW; its config has a ``caption``
  entry, :func:`caption_config`) takes ``captions: int32 [batch, L]`` (token
  ids, 0 pads, ``L`` the config's ``caption.input_length``) beside ``noise``
  in ``generate(captions, noise)``, where ``noise`` is standard normal
  ``eps_t`` (the learned prior turns it into ``z_t``), and its ``sample`` takes
  ``captions`` instead of ``num_samples``; the outputs are the same.
- The decoder config (:func:`decoder_config`) is stored as JSON in a TFLite
  file's metadata entry :data:`CONFIG_NAME` and in a SavedModel folder at
  :data:`SAVED_MODEL_CONFIG`.
- An export folder holds :data:`SAVED_MODEL_DIR` and :data:`MANIFEST`.

This module is plain Python (no TensorFlow, except what a caption model's
default vocabulary brings, :func:`caption_config`); both sides import it and
neither imports the other's private names.
"""

from __future__ import annotations

import json
import os

GENERATE = "generate"
SAMPLE = "sample"
NOISE_INPUT = "noise"
NUM_SAMPLES_INPUT = "num_samples"
NOISE_DTYPE = "float32"
CAPTIONS_INPUT = "captions"
CAPTIONS_DTYPE = "int32"
NUM_SAMPLES_DTYPE = "int32"
OUTPUTS = ("images", "canvases", "write_windows")
# The columns of a write window, as DrawModel.generate's `windows` [N, T, 4] (the
# cell's window, draw_tf.model.filterbank): centre and stride of the N x N grid and
# the Gaussian filters' standard deviation, all in 0-based pixels.
WINDOW_COLUMNS = ("centre_x", "centre_y", "stride", "sigma")
# Exports of manifest format 1 returned [batch, T, 3]: the first three columns.
LEGACY_WINDOW_COLUMNS = WINDOW_COLUMNS[:3]
OUTPUT_DTYPE = "float32"
# Name of the JSON model description inside a .tflite file (flatbuffer
# metadata) and inside a SavedModel folder (assets.extra/).
CONFIG_NAME = "draw_tf_decoder_config"
SAVED_MODEL_CONFIG = os.path.join("assets.extra", "draw_tf_decoder_config.json")
# The SavedModel folder and the manifest inside an export folder.
SAVED_MODEL_DIR = "saved_model"
MANIFEST = "manifest.json"


def decoder_config(model, caption_encoding: dict | None = None) -> dict:
  """The facts about a :class:`draw_tf.DrawModel` that a sampler needs.

  For a caption model (:class:`draw_tf.AlignDrawModel`) also ``caption``: :func:`caption_config`.
  """
  cell = model.cell
  config = {"image_shape": list(model.image_shape), "num_steps": model.num_steps,
            "latent_dim": model.latent_dim, "decoder_units": cell.decoder_units,
            "write_size": cell.write_size, "write_attention": cell.write_attention}
  if is_caption_model(model):
    config["caption"] = caption_config(model, caption_encoding)
  return config


def is_caption_model(model) -> bool:
  """Whether ``model`` draws from captions (alignDRAW: its cell has a caption encoder)."""
  return hasattr(model.cell, "caption_encoder")


def caption_config(model, caption_encoding: dict | None = None) -> dict:
  """The ``caption`` entry of a caption model's decoder config: how to feed it captions.

  ``vocab_size`` (ids, padding included) and ``input_length`` (``L``, the width of the
  ``captions`` input: every caption is padded with ``pad_id`` to it) come from the model;
  ``caption_encoding`` says how text becomes ids (``words`` in id order from id 1, ``pad_id``,
  ``max_caption_length`` in tokens, ``number_words``, ``end_token``, ``example``); by default
  the mnist_captions grammar's (:func:`draw_tf.runs.workdir.caption_encoding`, imported here
  only for a model, which has TensorFlow loaded already).
  """
  if caption_encoding is None:
    from draw_tf.runs import workdir  # pylint: disable=g-import-not-at-top
    caption_encoding = workdir.caption_encoding()
  return {**caption_encoding, "vocab_size": int(model.cell.caption_encoder.vocab_size),
          "input_length": int(model.max_caption_length)}


def is_caption_config(config: dict) -> bool:
  """Whether a decoder config is a caption model's (it has a ``caption`` entry)."""
  return bool(config.get("caption"))


def encode_config(config: dict) -> bytes:
  """The metadata payload (UTF-8 JSON, sorted keys) of a decoder config."""
  return json.dumps(config, sort_keys=True).encode()


def decode_config(payload: bytes) -> dict:
  """Inverse of :func:`encode_config`."""
  return json.loads(bytes(payload).decode("utf-8"))


def noise_shape(config: dict, batch_size: int = -1) -> list:
  """Shape of ``generate``'s input: ``[batch_size, T, latent_dim]`` (-1: dynamic)."""
  return [batch_size, config["num_steps"], config["latent_dim"]]


def output_shapes(config: dict, batch_size: int = -1,
                  window_columns: int = len(WINDOW_COLUMNS)) -> dict:
  """Output name -> shape list (-1: dynamic batch size) for a decoder ``config``.

  ``window_columns``: 4 (:data:`WINDOW_COLUMNS`, what draw-export writes) or 3 (an export of
  manifest format 1, :data:`LEGACY_WINDOW_COLUMNS`).
  """
  h, w, c = config["image_shape"]
  t = config["num_steps"]
  return {"images": [batch_size, h, w, c], "canvases": [batch_size, t, h, w, c],
          "write_windows": [batch_size, t, window_columns]}


def captions_shape(config: dict, batch_size: int = -1) -> list:
  """Shape of a caption decoder's ``captions`` input: ``[batch_size, L]`` (-1: dynamic)."""
  return [batch_size, int(config["caption"]["input_length"])]


def generate_inputs(config: dict, batch_size: int = -1) -> dict:
  """The manifest's description of ``generate``'s inputs (``captions`` too for a caption model)."""
  inputs = {NOISE_INPUT: {"dtype": NOISE_DTYPE, "shape": noise_shape(config, batch_size)}}
  if is_caption_config(config):
    inputs = {CAPTIONS_INPUT: {"dtype": CAPTIONS_DTYPE, "shape": captions_shape(config, batch_size)},
              **inputs}
  return inputs


def sample_inputs(config: dict) -> dict:
  """The manifest's description of ``sample``'s inputs: ``num_samples``, or a caption model's ``captions``."""
  if is_caption_config(config):
    return {CAPTIONS_INPUT: {"dtype": CAPTIONS_DTYPE, "shape": captions_shape(config)}}
  return {NUM_SAMPLES_INPUT: {"dtype": NUM_SAMPLES_DTYPE, "shape": []}}


def signatures(config: dict) -> dict:
  """The manifest's ``signatures`` entry: inputs and outputs of both signatures."""
  outputs = {k: {"dtype": OUTPUT_DTYPE, "shape": s} for k, s in output_shapes(config).items()}
  return {
      GENERATE: {"inputs": generate_inputs(config), "outputs": outputs},
      SAMPLE: {"inputs": sample_inputs(config), "outputs": outputs},
  }


def check_inputs(path: str, inputs: dict) -> None:
  """Checks ``generate``'s inputs ``{name: (dtype_name, shape)}``; raises ``ValueError`` naming the problem.

  A DRAW decoder takes only ``noise`` float32 ``[-1, T, latent_dim]``; a caption decoder also
  ``captions`` int32 ``[-1, L]``; the batch size is dynamic.
  """
  names = sorted(inputs)
  if names not in ([NOISE_INPUT], sorted([CAPTIONS_INPUT, NOISE_INPUT])):
    raise ValueError(
        f"{path}: signature '{GENERATE}' takes {names}, expected only '{NOISE_INPUT}' (a DRAW decoder) "
        f"or '{CAPTIONS_INPUT}' and '{NOISE_INPUT}' (a caption decoder).")
  check_noise_input(path, *inputs[NOISE_INPUT])
  if CAPTIONS_INPUT in inputs:
    dtype_name, shape = inputs[CAPTIONS_INPUT]
    if dtype_name != CAPTIONS_DTYPE or len(shape) != 2 or shape[0] != -1 or shape[1] < 1:
      raise ValueError(
          f"{path}: input '{CAPTIONS_INPUT}' is {dtype_name} {shape}, expected {CAPTIONS_DTYPE} [-1, L] "
          "with a dynamic batch size.")


def check_noise_input(path: str, dtype_name: str, shape: list) -> None:
  """Raises ``ValueError`` unless ``generate``'s input is float32 ``[-1, T, latent_dim]``."""
  if dtype_name != NOISE_DTYPE or len(shape) != 3 or shape[0] != -1:
    raise ValueError(
        f"{path}: input '{NOISE_INPUT}' is {dtype_name} {shape}, expected {NOISE_DTYPE} "
        "[-1, T, latent_dim] with a dynamic batch size.")


def window_columns_of(outputs: dict) -> int:
  """How many window columns ``generate``'s ``write_windows`` has: 4, or 3 for a format-1 export.

  ``outputs`` as in :func:`check_outputs`; any other count is returned as it is (and refused there).
  """
  shape = outputs.get("write_windows", (None, []))[1]
  return int(shape[-1]) if len(shape) == 3 else len(WINDOW_COLUMNS)


def check_outputs(path: str, outputs: dict, config: dict) -> int:
  """Checks ``generate``'s outputs against ``config``; raises ``ValueError`` naming the problem.

  ``write_windows`` may have 4 columns (:data:`WINDOW_COLUMNS`) or 3 (an export of manifest
  format 1, :data:`LEGACY_WINDOW_COLUMNS`).

  Args:
    path: the artifact, for the message.
    outputs: ``{name: (dtype_name, shape list with -1 for a dynamic size)}``.
    config: the decoder config (``image_shape``, ``num_steps``).

  Returns:
    The number of window columns: 4, or 3 for a format-1 export.
  """
  missing = [k for k in OUTPUTS if k not in outputs]
  if missing:
    raise ValueError(
        f"{path}: signature '{GENERATE}' has outputs {sorted(outputs)}, missing {missing}; "
        f"a DRAW decoder exported by draw-export returns {list(OUTPUTS)}.")
  columns = window_columns_of(outputs)
  if columns not in (len(WINDOW_COLUMNS), len(LEGACY_WINDOW_COLUMNS)):
    columns = len(WINDOW_COLUMNS)  # the message below names the shape expected today
  for name, want in output_shapes(config, window_columns=columns).items():
    dtype, shape = outputs[name]
    if dtype != OUTPUT_DTYPE or shape != want:
      raise ValueError(
          f"{path}: output '{name}' of signature '{GENERATE}' is {dtype} {shape}, "
          f"expected {OUTPUT_DTYPE} {want}"
          + (f" (columns {list(WINDOW_COLUMNS)})" if name == "write_windows" else "") + ".")
  return columns
