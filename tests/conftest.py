"""Shared pytest setup: quiet TensorFlow logs, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
  """Every test starts from the same Keras/NumPy/TF seeds."""
  keras.utils.set_random_seed(1234)
  yield


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory):
  """A cache folder holding a small made-up MNIST (see tests/fake_mnist.py)."""
  from tests import fake_mnist  # pylint: disable=g-import-not-at-top
  cache = str(tmp_path_factory.mktemp("draw_tf_cache"))
  fake_mnist.write_cache(cache)
  return cache


def tiny_config(cache_dir, **overrides):
  """configs/tiny.py reading ``cache_dir``, silent, with ``section.key=value`` overrides."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.cache_dir = cache_dir
  config.train.verbose = 0
  for key, value in overrides.items():
    section, name = key.split("__")
    config[section][name] = value
  return config


@pytest.fixture(scope="session")
def trained_tiny(fake_cache, tmp_path_factory):
  """``(workdir, config, model)`` of one tiny training run shared by several tests."""
  from draw_tf import train_lib  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  workdir = str(tmp_path_factory.mktemp("trained_tiny"))
  config = tiny_config(fake_cache, train__num_epochs=3, train__steps_per_epoch=10)
  model, history = train_lib.train_and_evaluate(config, workdir)
  return workdir, config, model, history
