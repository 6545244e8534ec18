"""config_check: every field of every config has a rule, bad values are refused before
anything is written, and training-only fields may change on resume (recorded)."""

import glob
import importlib
import json
import os

import numpy as np
import pytest

import draw_tf
from draw_tf.runs import config_check
from draw_tf import data
from draw_tf.model import variants
from draw_tf.model import losses
from draw_tf.model import registry
from draw_tf.training import tasks
from draw_tf.training import train as train_lib
from draw_tf.training import metrics_log
from draw_tf.errors import ConfigError, UsageError, WorkdirConfigMismatchError
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(ROOT, "configs", "*.py")) if not p.endswith("__init__.py"))


def test_every_field_of_the_default_config_has_a_rule():
  """A field added to configs/default.py needs a line in config_check.FIELDS (merges rely on this)."""
  from configs import default  # pylint: disable=g-import-not-at-top
  fields = set(config_check.flatten(default.get_config()))
  assert fields - set(config_check.FIELDS) == set(), "add these to draw_tf/runs/config_check.py FIELDS"
  assert set(config_check.FIELDS) - fields == set(), "FIELDS names fields configs/default.py lacks"


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shipped_config_passes_validation(name):
  config_check.validate(importlib.import_module(f"configs.{name}").get_config())


def test_the_choices_are_the_modules_own_lists():
  """The data, likelihood and task choices are the modules' own lists (one table per fact)."""
  assert config_check.SOURCES is data.SOURCES and config_check.BINARIZATIONS is data.BINARIZATIONS
  assert config_check.DATASETS == tuple(data.DATASETS) and config_check.LIKELIHOODS is losses.LIKELIHOODS
  assert config_check.TASKS is registry.TASK_NAMES and tuple(tasks.TASKS) == registry.TASK_NAMES
  assert set(config_check.RESUMABLE_CHANGES) <= set(config_check.FIELDS)


def test_jit_compile_reads_auto_true_false_and_older_configs_bools():
  rule = config_check.FIELDS["train.jit_compile"]
  for value, want in (("auto", "auto"), ("true", True), ("false", False), (True, True), (False, False),
                      ("True", True), ("FALSE", False)):
    assert rule.ok(value) and config_check.jit_setting(value) == want
  assert not rule.ok("yes") and not rule.ok(1)


def test_the_research_switch_rules_come_from_the_variant_table():
  for switch in variants.SWITCHES:
    rule = config_check.FIELDS[f"model.{switch.name}"]
    assert rule.ok(switch.default) and rule.ok(switch.before), switch.name
    for value in switch.choices or (1, 8):
      assert rule.ok(value), (switch.name, value)
    assert not rule.ok("no such value"), switch.name
  assert not config_check.FIELDS["model.conv_filters"].ok(0)


@pytest.mark.parametrize("field,value,allowed", [
    ("train.learning_rate", -1e-3, "a number > 0"),
    ("train.steps_per_epoch", -6, "an integer >= 0"),
    ("data.max_test_examples", -1, "an integer >= 0"),
    ("train.grad_clip_norm", -1.0, "a number >= 0"),
    ("train.learning_rate", float("nan"), "a number > 0"),
    ("model.num_steps", 0, "an integer >= 1"),
    ("train.adam_beta1", 1.0, "a number >= 0 and < 1"),
    ("train.verbose", 3, "one of: 0, 1, 2"),
    ("data.binarization", "sometimes", "one of: dynamic, fixed, none"),
    ("model.image_shape", (28, 28), "(height, width, channels)"),
    ("train.jit_compile", "maybe", "auto, true or false"),
    ("train.backward", "manual", "one of: auto, fused, autodiff"),
])
def test_a_bad_value_is_one_line_naming_field_value_and_range(fake_cache, tmp_path, field, value, allowed):
  section, key = field.split(".")
  config = tiny_config(fake_cache)
  config[section][key] = value
  workdir = str(tmp_path / "run")
  with pytest.raises(ConfigError) as err:
    train_lib.train_and_evaluate(config, workdir)
  message = str(err.value)
  assert message.startswith(f"{field} = {value!r}: must be {allowed}") and "\n" not in message
  assert not os.path.exists(workdir)  # nothing written


def test_a_field_without_a_rule_is_refused():
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.train.bogus = 1
  with pytest.raises(ConfigError, match="train.bogus = 1: unknown config field"):
    config_check.validate(config)


def test_model_sizes_and_generate_counts_must_be_whole_numbers():
  with pytest.raises(ConfigError, match="num_steps must be a positive integer, got 2.7"):
    draw_tf.DrawModel(image_shape=(8, 8, 1), num_steps=2.7, latent_dim=2, encoder_units=4, decoder_units=4)
  model = draw_tf.DrawModel(image_shape=(8, 8, 1), num_steps=2.0, latent_dim=2, encoder_units=4,
                            decoder_units=4)
  assert model.num_steps == 2
  with pytest.raises(ConfigError, match="num_samples must be a positive integer, got 2.9"):
    model.generate(2.9)
  assert model.generate(2, seed=0).images.shape == (2, 8, 8, 1)


def test_empty_workdir_is_refused(fake_cache):
  with pytest.raises(UsageError, match="--workdir is empty"):
    train_lib.train_and_evaluate(tiny_config(fake_cache), "")


def test_a_rejected_value_leaves_no_config_json_so_the_corrected_command_runs(fake_cache, tmp_path):
  """image_shape is checked against the data before config.json exists."""
  workdir = str(tmp_path)
  with pytest.raises(ConfigError, match="image_shape"):
    train_lib.train_and_evaluate(tiny_config(fake_cache, model__image_shape=(32, 32, 1)), workdir)
  assert os.listdir(workdir) == []
  config = tiny_config(fake_cache, train__num_epochs=1, train__steps_per_epoch=2)
  train_lib.train_and_evaluate(config, workdir)
  assert os.path.exists(os.path.join(workdir, "config.json"))


def test_training_only_fields_may_change_on_resume_and_the_change_is_recorded(fake_cache, tmp_path):
  """The NaN advice (lower the learning rate or clip norm and rerun) works: 1 epoch, then 2 at lr/10."""
  workdir = str(tmp_path)
  train_lib.train_and_evaluate(tiny_config(fake_cache, train__num_epochs=1, train__steps_per_epoch=2), workdir)
  changed = tiny_config(fake_cache, train__num_epochs=2, train__steps_per_epoch=2, train__learning_rate=1e-3,
                        train__grad_clip_norm=2.0)
  model, _ = train_lib.train_and_evaluate(changed, workdir)
  assert int(model.optimizer.iterations.numpy()) == 4
  lines = metrics_log.read_metrics(os.path.join(workdir, "metrics.jsonl"))
  assert [l.get("epoch") for l in lines] == [1, None, 2]
  assert lines[1]["step"] == 2 and lines[1]["config_changes"] == {
      "train.grad_clip_norm": [10.0, 2.0], "train.learning_rate": [0.01, 0.001], "train.num_epochs": [1, 2]}
  assert lines[2]["learning_rate"] == pytest.approx(1e-3)
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["train"]["learning_rate"] == 1e-3
  # Anything else still may not change.
  with pytest.raises(WorkdirConfigMismatchError, match="train.batch_size: 32 in the workdir, 16 now"):
    train_lib.train_and_evaluate(tiny_config(fake_cache, train__num_epochs=2, train__steps_per_epoch=2,
                                             train__learning_rate=1e-3, train__grad_clip_norm=2.0,
                                             train__batch_size=16), workdir)
  assert np.isfinite(lines[2]["test_nll_bound"])
