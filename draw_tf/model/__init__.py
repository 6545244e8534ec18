"""The model layer: DRAW's maths, its Keras layers, the model and its losses.

Imports nothing above it (no data, workdir, training or command line):

- :mod:`~draw_tf.model.filterbank` (pure attention maths, eqs. 19-29),
  :mod:`~draw_tf.model.losses` (per-example loss terms) and
  :mod:`~draw_tf.model.variants` (the research switches, one table);
- :mod:`~draw_tf.model.attention` (read and write layers),
  :mod:`~draw_tf.model.layers` (LSTM and convolutional layers),
  :mod:`~draw_tf.model.cell` (one step), :mod:`~draw_tf.model.unroll` (the T-step loop);
- :mod:`~draw_tf.model.draw_model` (:class:`DrawModel`),
  :mod:`~draw_tf.model.fused_backward` (the training unroll with a hand-written backward,
  ``backward="fused"``), :mod:`~draw_tf.model.sequence_decoder` (generation as one
  sequence computation, used by the exports), :mod:`~draw_tf.model.classifier`,
  :mod:`~draw_tf.model.registry` (the one table of tasks: ``config.task`` -> model class);
- around the model: :mod:`~draw_tf.model.inputs` (checks of what users feed it),
  :mod:`~draw_tf.model.diagnostics` (latent usage), :mod:`~draw_tf.model.weight_average`,
  :mod:`~draw_tf.model.visualize` (pictures) and :mod:`~draw_tf.model.workarounds`.
"""
