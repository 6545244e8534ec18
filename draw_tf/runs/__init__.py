"""A run's config and its workdir on disk, shared by training, evaluation and export.

- :mod:`~draw_tf.runs.config_check`: the rule of every config field, checked before a
  run writes anything, and which fields may change on resume;
- :mod:`~draw_tf.runs.workdir`: ``config.json``, the model of a workdir, resume checks;
- :mod:`~draw_tf.runs.checkpoints`: the newest undamaged checkpoint;
- :mod:`~draw_tf.runs.lock`: one writer per workdir.

Imports the model and data layers (the data fields' choices), never training or the
command line, so :mod:`draw_tf.export` can load a workdir's model.
"""
