"""The five binaries, each a thin ``*_main.py`` over a library, and their shared plumbing.

``draw-train`` (:mod:`~draw_tf.cli.train_main`), ``draw-eval``
(:mod:`~draw_tf.cli.eval_main`), ``draw-compress`` (:mod:`~draw_tf.cli.compress_main`),
``draw-export`` (:mod:`~draw_tf.cli.export_main`) and ``draw-sample``
(:mod:`~draw_tf.cli.sample_main`); each also runs as ``python -m draw_tf.cli.NAME_main``.
:mod:`~draw_tf.cli.plumbing` turns user errors into one line and an exit status.
The top layer: it may import every other; nothing in the library imports it.
"""
