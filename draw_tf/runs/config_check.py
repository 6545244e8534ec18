"""Validation of every config field (type, range, choices) before a run writes anything.

:data:`SCHEMA` declares each field of ``configs/default.py`` once (alignDRAW's
``caption`` group among them; the classifier's
``model`` group, ``configs/cluttered_mnist_classify.py``, has
:data:`CLASSIFIER_SCHEMA`): its rule, whether it may change on resume and what a
workdir from before the field meant. :data:`FIELDS`, :data:`RESUMABLE_CHANGES`,
:data:`RUN_CONTROL_FIELDS` and :data:`ADDED_FIELDS` are read from it. :func:`validate` checks a whole config and
raises :class:`~draw_tf.errors.ConfigError` with one line naming the field, the
value and what is allowed, e.g.::

    train.learning_rate = -0.001: must be a number > 0 (got -0.001)

A field without a rule is refused too, so a new config field needs a line in :data:`SCHEMA`
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
from typing import Any, NamedTuple

from draw_tf.data import caption_grammar
from draw_tf.data import types as data_types
from draw_tf.model import losses
from draw_tf.model import registry
from draw_tf.model import variants
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


# The choices of the data and model fields are the data, loss and task modules' own lists.
TASKS = registry.TASK_NAMES
DATASETS = tuple(data_types.DATASETS)
SOURCES = data_types.SOURCES
BINARIZATIONS = data_types.BINARIZATIONS
LIKELIHOODS = losses.LIKELIHOODS
STRATEGIES = ("auto", "mirrored", "multi_worker_mirrored", "one_device")
LR_SCHEDULES = ("constant", "cosine", "exponential")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BACKWARDS = ("auto", "fused", "autodiff")

def switch_rule(switch: variants.Switch) -> Rule:
  """The rule of a research switch, from its row in :data:`draw_tf.model.variants.SWITCHES`."""
  if switch.choices is None:
    return Int(1)
  if isinstance(switch.default, bool):
    return Bool()
  return Choice(*switch.choices)


FIXED = "fixed"  # a resumed run must have the value config.json holds
RESUMABLE = "resumable"  # training-only: may change on resume (logged, recorded in metrics.jsonl)
RUN_CONTROL = "run_control"  # steers this invocation only: may change on resume, not recorded


class _Always:
  def __repr__(self):
    return "ALWAYS"


ALWAYS = _Always()  # ``Field.before`` of a field every workdir has


class Field(NamedTuple):
  """One config field, declared once.

  Attributes:
    rule: its type and range (:class:`Rule`).
    resume: :data:`FIXED`, :data:`RESUMABLE` or :data:`RUN_CONTROL`.
    before: what a workdir written before the field existed meant (resuming such a
      workdir fills it in); :data:`ALWAYS` when every workdir has it.
  """
  rule: Rule
  resume: str = FIXED
  before: Any = ALWAYS


# Every field of configs/default.py (the DrawModel task), once: the rules, the resume
# table and the values older workdirs meant below are all read from here.
SCHEMA = {
    "task": Field(Choice(*TASKS), before="generate"),
    "model.image_shape": Field(Shape()),
    "model.num_steps": Field(Int(1)),
    "model.latent_dim": Field(Int(1)),
    "model.encoder_units": Field(Int(1)),
    "model.decoder_units": Field(Int(1)),
    "model.read_size": Field(Int(1)),
    "model.write_size": Field(Int(1)),
    "model.read_attention": Field(Bool()),
    "model.write_attention": Field(Bool()),
    "model.likelihood": Field(Choice(*LIKELIHOODS), before="bernoulli"),
    # The research switches at what a workdir from before each meant
    # (the paper's values; window_init: the all-zero bias of older runs).
    **{f"model.{switch.name}": Field(switch_rule(switch), before=switch.before) for switch in variants.SWITCHES},
    "model.beta": Field(Float(0, low_open=True), before=1.0),
    # alignDRAW's caption side (task = caption); older workdirs had none: these defaults.
    "caption.vocab_size": Field(Int(2), before=caption_grammar.VOCAB_SIZE),
    "caption.max_caption_length": Field(Int(1), before=caption_grammar.MAX_CAPTION_LENGTH),
    "caption.word_dim": Field(Int(1), before=32),
    "caption.caption_units": Field(Int(1), before=128),
    "caption.align_units": Field(Int(1), before=512),
    "data.name": Field(Choice(*DATASETS)),
    "data.source": Field(Choice(*SOURCES)),
    "data.binarization": Field(Choice(*BINARIZATIONS)),
    "data.tfds_data_dir": Field(Str()),
    "data.tfds_download": Field(Bool()),
    "data.cache_dir": Field(Str()),
    "data.train_split": Field(Str()),
    "data.seed": Field(Int(0)),
    "data.max_train_examples": Field(Int(0)),
    "data.max_test_examples": Field(Int(0)),
    "data.validation_examples": Field(Int(0), before=0),
    "data.fresh_each_epoch": Field(Bool(), before=False),
    "train.batch_size": Field(Int(1)),
    "train.num_epochs": Field(Int(1), RESUMABLE),
    "train.steps_per_epoch": Field(Int(0)),
    "train.max_minutes": Field(Float(0), RUN_CONTROL),
    "train.budget_minutes": Field(Float(0), RESUMABLE, before=0.0),
    "train.learning_rate": Field(Float(0, low_open=True), RESUMABLE),
    "train.lr_schedule": Field(Choice(*LR_SCHEDULES), RESUMABLE),
    "train.warmup_steps": Field(Int(0), RESUMABLE),
    "train.kl_warmup_steps": Field(Int(0), RESUMABLE, before=0),
    "train.ema_decay": Field(Float(0, 1, high_open=True), RESUMABLE, before=0.0),
    "train.final_lr_fraction": Field(Float(0, 1), RESUMABLE),
    "train.adam_beta1": Field(Float(0, 1, high_open=True)),
    "train.adam_beta2": Field(Float(0, 1, high_open=True)),
    "train.grad_clip_norm": Field(Float(0), RESUMABLE),
    "train.strategy": Field(Choice(*STRATEGIES)),
    "train.jit_compile": Field(JitSetting(), RESUMABLE),
    "train.backward": Field(Choice(*BACKWARDS), RESUMABLE),
    "train.mixed_precision": Field(Choice(*PRECISIONS), before="float32"),
    "train.deterministic_noise": Field(Bool()),
    "train.checkpoint_every_steps": Field(Int(1), RESUMABLE),
    "train.max_checkpoints": Field(Int(1), RESUMABLE),
    "train.log_every_steps": Field(Int(1), RESUMABLE),
    "train.verbose": Field(Choice(0, 1, 2), RUN_CONTROL),
    "train.seed": Field(Int(0)),
    "eval.batch_size": Field(Int(1), RESUMABLE),
    "eval.every_epochs": Field(Int(1), RESUMABLE),
    "eval.every_minutes": Field(Float(0), RESUMABLE, before=0.0),
    "eval.keep_best": Field(Str(), RESUMABLE, before=""),
    "eval.num_samples": Field(Int(1), RESUMABLE),
    "eval.num_gif_samples": Field(Int(1), RESUMABLE),
    "eval.sample_seed": Field(Int(0), RESUMABLE),
}

# config.model of the classify task: DrawClassifier's arguments.
CLASSIFIER_SCHEMA = {
    "model.image_shape": Field(Shape()),
    "model.num_glimpses": Field(Int(1)),
    "model.glimpse_size": Field(Int(1)),
    "model.units": Field(Int(1)),
    "model.num_classes": Field(Int(2)),
    "model.bounded_window": Field(Bool(), before=False),
}

# Read from the two tables above.
FIELDS = {name: field.rule for name, field in SCHEMA.items()}
CLASSIFIER_MODEL_FIELDS = {name: field.rule for name, field in CLASSIFIER_SCHEMA.items()}
# Training-only fields that may change when a run is resumed: they steer the steps
# still to come and never what the checkpoint holds. The change is logged and
# recorded in metrics.jsonl ({"config_changes": ...}); config.json takes the new values.
RESUMABLE_CHANGES = tuple(name for name, field in SCHEMA.items() if field.resume == RESUMABLE)
# Fields that only steer this invocation; they may change on resume and are not recorded.
RUN_CONTROL_FIELDS = tuple(name for name, field in SCHEMA.items() if field.resume == RUN_CONTROL)
# Fields added to the configs after workdirs were first written, with the value
# that computes what older runs computed: a workdir without the field matches it
# (the classifier's are only compared when present).
ADDED_FIELDS = {name: field.before for name, field in {**SCHEMA, **CLASSIFIER_SCHEMA}.items()
                if field.before is not ALWAYS}


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
                        "draw_tf/runs/config_check.py).")
    check_field(name, flat[name], rules[name])
  if flat.get("data.fresh_each_epoch") and flat.get("data.name") != "cluttered_mnist":
    raise ConfigError(f"data.fresh_each_epoch = True: applies to cluttered_mnist only, not "
                      f"{flat.get('data.name')!r} (--config.data.fresh_each_epoch=False).")
  if flat.get("task") == "classify" and flat.get("train.mixed_precision", "float32") != "float32":
    raise ConfigError("train.mixed_precision applies to DrawModel only; the classifier trains in "
                      "float32 (--config.train.mixed_precision=float32).")
  if flat.get("task") == "caption":
    _check_caption(flat)


def _check_caption(flat: dict) -> None:
  """The combinations alignDRAW (``task = caption``) cannot run, each a ConfigError naming the fix."""
  problems = (
      ("data.name", "mnist_captions", "the caption task trains on (image, caption) pairs, which only "
       "mnist_captions has"),
      ("model.prior", "learned", "alignDRAW's prior depends on h_gen_{t-1} (Mansimov et al. eq. 1)"),
      ("data.validation_examples", 0, "mnist_captions has its own validation split (5,000 images); "
       "training evaluates on it"),
  )
  for name, wanted, why in problems:
    if flat.get(name) != wanted:
      raise ConfigError(f"{name} = {flat.get(name)!r}: {why} (--config.{name}={wanted}).")
  if flat.get("data.binarization") == "fixed":
    raise ConfigError("data.binarization = 'fixed': mnist_captions composes its training pairs afresh "
                      "every data epoch, so there is no one sample to fix (--config.data.binarization=dynamic).")
  if flat.get("train.backward") == "fused":
    raise ConfigError("train.backward = 'fused': the fused backward covers DRAW only, not alignDRAW "
                      "(--config.train.backward=auto).")
  for name, least in (("caption.vocab_size", caption_grammar.VOCAB_SIZE),
                      ("caption.max_caption_length", caption_grammar.MAX_CAPTION_LENGTH)):
    if flat.get(name, least) < least:
      raise ConfigError(f"{name} = {flat[name]!r}: mnist_captions needs at least {least} "
                        f"(--config.{name}={least}).")
