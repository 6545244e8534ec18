"""Export of DRAW's decoder to SavedModel and TFLite, and sampling from any backend.

- :mod:`export.export_lib`: ``export_model(model, output_dir)`` writes a
  SavedModel and three TFLite files (float32, float16, dynamic-range int8),
  checks every artifact against the Keras model, then writes ``manifest.json``.
- :mod:`export.sampler`: one sampling interface over a Keras model, a
  SavedModel folder or a ``.tflite`` file.
- :mod:`export.contract`: the signature contract both sides share (signature,
  input and output names, dtypes and shapes, the stored config, the manifest's
  signature entry).
- :mod:`export.export_main` (``draw-export``) and :mod:`export.sample_main`
  (``draw-sample``): the command-line binaries.

This package imports the model (:mod:`draw_tf`), never the training loop.
"""
