"""The one table of tasks (``config.task``): the model class each task trains.

``config.task`` picks what a run trains; this table is where a task's name and its
model class are written, once. Everything that needs the list of tasks reads it here:
the config schema (:data:`draw_tf.runs.config_check.TASKS`), rebuilding a workdir's
model (:func:`draw_tf.runs.workdir.build_model`) and the training layer's task
registry (:data:`draw_tf.training.tasks.TASKS`, which holds what else differs
between tasks and is checked against this table where it is built).

Example::

    registry.model_class("classify")   # DrawClassifier
    registry.TASK_NAMES                # ("generate", "classify")
"""

from __future__ import annotations

from draw_tf.model.classifier import DrawClassifier
from draw_tf.model.draw_model import DrawModel

# config.task -> the Keras model class it trains. Configs written before the field: "generate".
MODEL_CLASSES = {"generate": DrawModel, "classify": DrawClassifier}
TASK_NAMES = tuple(MODEL_CLASSES)
DEFAULT_TASK = "generate"


def task_of(config) -> str:
  """``config.task`` (a resolved or a user config; older configs without it: ``generate``)."""
  return config.get("task", DEFAULT_TASK)


def model_class(task: str) -> type:
  """The model class of a task name (one of :data:`TASK_NAMES`)."""
  return MODEL_CLASSES[task]
