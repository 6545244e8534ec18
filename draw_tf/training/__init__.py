"""The training layer: ``train_and_evaluate``, its callbacks and log, tasks and evaluation.

- :mod:`~draw_tf.training.train`: ``train_and_evaluate(config, workdir)``, one screen, and
  its parts; :mod:`~draw_tf.training.callbacks` (checkpoints, budget clock, reports),
  :mod:`~draw_tf.training.metrics_log` (``metrics.jsonl``), :mod:`~draw_tf.training.resume`
  (restore, the workdir's repairs), :mod:`~draw_tf.training.optimizer` (schedule and Adam),
  :mod:`~draw_tf.training.strategy` (``tf.distribute``);
- :mod:`~draw_tf.training.tasks`: the task registry (``generate``, ``classify``);
- :mod:`~draw_tf.training.evaluation`: a model over one split (the bounds, test error);
- :mod:`~draw_tf.training.eval_workdir`: ``evaluate_workdir``, the work of ``draw-eval``;
- :mod:`~draw_tf.training.compress`: conceptual compression (``draw-compress``);
- :mod:`~draw_tf.training.interrupts`: Ctrl-C as a clean stop.

Imports the model, data and runs layers; never the command line or export.
"""
