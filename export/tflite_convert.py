"""The TFLite side of an export: conversion of the SavedModel, metadata, the ops a file uses.

The file names of the three quantisations (:data:`TFLITE_FILES`) and the
conversion :mod:`draw_tf.export.export_lib` runs for each; the web page's export
(:mod:`draw_tf.export.web_export`) reads the ops of its own files with
:func:`tflite_op_names`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from draw_tf.export import contract

# Quantisation -> file name. float16 stores weights as float16 (dequantised at
# load); int8 is dynamic range (int8 weights, float activations).
TFLITE_FILES = {
    "float32": "draw_decoder.tflite",
    "float16": "draw_decoder_fp16.tflite",
    "int8": "draw_decoder_int8.tflite",
}


def convert_to_tflite(saved_model_dir: str, quantization: str = "float32") -> bytes:
  """Converts the SavedModel's two signatures to TFLite, builtin ops only.

  Args:
    saved_model_dir: written by :func:`draw_tf.export.export_lib.save_saved_model`.
    quantization: ``float32``, ``float16`` (float16 weights) or ``int8``
      (dynamic range: int8 weights, float activations).
  """
  if quantization not in TFLITE_FILES:
    raise ValueError(f"quantization must be one of {sorted(TFLITE_FILES)}, got {quantization!r}.")
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=[contract.GENERATE, contract.SAMPLE])
  # Builtin ops only: the stock runtime on Android and iOS has no Flex ops.
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantization != "float32":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  return converter.convert()


def add_tflite_metadata(model_bytes: bytes, name: str, payload: bytes) -> bytes:
  """Returns ``model_bytes`` with a metadata entry ``name`` holding ``payload``."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  from ai_edge_litert.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
  buffer = schema.BufferT()
  buffer.data = np.frombuffer(payload, np.uint8)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name = name
  entry.buffer = len(model.buffers) - 1
  model.metadata = [m for m in (model.metadata or []) if m.name not in (name, name.encode())]
  model.metadata.append(entry)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_op_names(model_bytes: bytes) -> list:
  """Sorted op names used by a TFLite model (custom and Flex ops as ``CUSTOM:name``)."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
  model = schema.Model.GetRootAs(model_bytes, 0)
  ops = set()
  for i in range(model.OperatorCodesLength()):
    code = model.OperatorCodes(i)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
      ops.add("CUSTOM:" + (code.CustomCode() or b"?").decode())
    else:
      ops.add(names.get(builtin, f"UNKNOWN_{builtin}"))
  return sorted(ops)
