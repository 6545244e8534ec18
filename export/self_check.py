"""How an exported artifact is compared with the Keras model it was exported from.

:func:`check_outputs` is the one place that decides whether an artifact's outputs on the self-check's
inputs are close enough: the *max* abs difference for float32 artifacts and the SavedModel
(:data:`FLOAT32_TOLERANCE`, or a caption decoder's :func:`draw_tf.export.caption_export.float32_tolerance`),
the *mean* for a caption decoder's int8 file (:func:`draw_tf.export.caption_export.int8_tolerance`; its max
recorded), only finiteness for DRAW's int8 and float16 files. :mod:`draw_tf.export.export_lib` (the export
folder) and :mod:`draw_tf.export.web_export` (the page's batch-1 files) both call it.
"""

from __future__ import annotations

import numpy as np

from draw_tf.export import caption_export
from draw_tf.export import contract
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import tflite_convert

# Max abs difference allowed between a float32 artifact and the Keras model.
FLOAT32_TOLERANCE = 1e-4


def max_abs_diffs(got: sampler_lib.Samples, want: sampler_lib.Samples) -> dict:
  """``max |got - want|`` per output (``inf`` for NaN/Inf or a shape mismatch).

  ``images`` and ``canvases`` are in [0, 1]; ``write_windows`` in pixels.
  """
  diffs = {}
  for name, a, b in zip(contract.OUTPUTS, got, want):
    if a.shape != b.shape:
      diffs[name] = float("inf")
      continue
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    diffs[name] = diff if np.isfinite(diff) else float("inf")
  return diffs


def tolerances(config: dict) -> dict:
  """Quantisation -> output name -> the abs difference the self-check allows against Keras (None: any
  finite): the max for float32 (and the SavedModel), :data:`FLOAT32_TOLERANCE` or a caption decoder's; a
  caption decoder's int8 bounds the mean (both :mod:`draw_tf.export.caption_export`'s, derived there)."""
  bounds = dict.fromkeys(tflite_convert.TFLITE_FILES, None)
  bounds["float32"] = dict.fromkeys(contract.OUTPUTS, FLOAT32_TOLERANCE)
  if contract.is_caption_config(config):
    bounds.update(float32=caption_export.float32_tolerance(config), int8=caption_export.int8_tolerance(config))
  return bounds


def check_outputs(name: str, got: sampler_lib.Samples, want: sampler_lib.Samples, quantization: str,
                  config: dict) -> tuple:
  """``(max abs diff per output, mean abs diff per output or {}, problems)`` of one artifact against Keras.

  The bound is :func:`tolerances`': the max for float32 (and the SavedModel), the mean for a caption
  decoder's int8 (its max recorded), none but finiteness for DRAW's int8.
  """
  diffs, bounds = max_abs_diffs(got, want), tolerances(config)
  if quantization == "int8" and bounds["int8"]:
    means, problems = caption_export.int8_problems(name, got, want, config)
    return diffs, means, problems
  tolerance = bounds[quantization]
  over = {k: v for k, v in diffs.items() if tolerance and not v <= tolerance[k]}
  if over:
    return diffs, {}, [f"{name}: max abs diff over the {quantization} tolerance: "
                       + ", ".join(f"{k} {v:.3g} > {tolerance[k]:g}" for k, v in over.items())]
  if not np.isfinite(max(diffs.values())):
    return diffs, {}, [f"{name}: NaN/Inf or wrong shapes on the verification noise"]
  return diffs, {}, []


def manifest_bounds(config: dict, means: dict) -> dict:
  """A manifest's record of the bounds: ``float32_tolerance`` (the max, per output, :func:`tolerances`') and,
  for a caption decoder, ``int8_tolerance`` (the mean, per output) and the measured
  ``int8_mean_abs_diff_per_output`` (file -> output -> float: :func:`check_outputs`' means; files
  without means, whose bound is not on the mean, are left out)."""
  bounds = tolerances(config)
  record = {"float32_tolerance": bounds["float32"]}
  if bounds["int8"]:
    record.update(int8_tolerance=bounds["int8"],
                  int8_mean_abs_diff_per_output={name: mean for name, mean in means.items() if mean})
  return record
