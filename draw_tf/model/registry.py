"""The one table of tasks (``config.task``): the model class each task trains, and its config groups.

``config.task`` picks what a run trains; this table is where a task's name, its model
class and the config groups that are the class's keyword arguments are written, once.
Everything that needs the list of tasks reads it here: the config schema
(:data:`draw_tf.runs.config_check.TASKS`), rebuilding a workdir's model
(:func:`draw_tf.runs.workdir.build_model`) and the training layer's task registry
(:data:`draw_tf.training.tasks.TASKS`, which holds what else differs between tasks and
is checked against this table where it is built).

Example::

    registry.model_class("classify")   # DrawClassifier
    registry.config_groups("caption")  # ("model", "caption")
    registry.TASK_NAMES                # ("generate", "classify", "caption")
"""

from __future__ import annotations

from draw_tf.model.align_draw import AlignDrawModel
from draw_tf.model.classifier import DrawClassifier
from draw_tf.model.draw_model import DrawModel

# config.task -> (the Keras model class it trains, the config groups that are its keyword arguments).
MODELS = {"generate": (DrawModel, ("model",)), "classify": (DrawClassifier, ("model",)),
          "caption": (AlignDrawModel, ("model", "caption"))}
TASK_NAMES = tuple(MODELS)
DEFAULT_TASK = "generate"  # configs written before the field


def task_of(config) -> str:
  """``config.task`` (a resolved or a user config; older configs without it: ``generate``)."""
  return config.get("task", DEFAULT_TASK)


def model_class(task: str) -> type:
  """The model class of a task name (one of :data:`TASK_NAMES`)."""
  return MODELS[task][0]


def config_groups(task: str) -> tuple:
  """The config groups whose fields are the keyword arguments of the task's model class."""
  return MODELS[task][1]
