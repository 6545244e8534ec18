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
