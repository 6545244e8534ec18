"""Export of DRAW's decoder (and alignDRAW's caption decoder) to SavedModel and TFLite, and sampling from any backend.

- :mod:`draw_tf.export.export_lib`: ``export_model(model, output_dir)`` writes a
  SavedModel and three TFLite files (float32, float16, dynamic-range int8),
  checks every artifact against the Keras model, then writes ``manifest.json``;
  :mod:`draw_tf.export.caption_export` holds what differs for a caption model and
  :mod:`draw_tf.export.output_dir` where an export may write.
- :mod:`draw_tf.export.sampler`: one sampling interface over a Keras model, a
  SavedModel folder or a ``.tflite`` file.
- :mod:`draw_tf.export.contract`: the signature contract both sides share (signature,
  input and output names, dtypes and shapes, the stored config, the manifest's
  signature entry).

This folder installs as ``draw_tf.export`` (``package_dir`` in setup.cfg), so no
top-level ``export`` package lands in site-packages. Its binaries, ``draw-export``
and ``draw-sample``, are :mod:`draw_tf.cli.export_main` and
:mod:`draw_tf.cli.sample_main`. It imports the model, the runs layer (a workdir's
model) and the pretrained models, never training or the command line.
"""
