"""The ``tf.distribute`` strategy a config names, and which worker of it writes the workdir."""

from __future__ import annotations

import os

from absl import logging
import tensorflow as tf

from draw_tf.errors import ConfigError
from draw_tf.runs import config_check


def make_strategy(name: str) -> tf.distribute.Strategy:
  """Returns the ``tf.distribute`` strategy named by ``config.train.strategy``.

  ``auto``: ``MirroredStrategy`` over all GPUs when more than one is visible,
  else the default strategy. ``mirrored``: ``MirroredStrategy`` over the GPUs,
  or over the logical CPUs when there is no GPU. ``multi_worker_mirrored``:
  ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG`` (create it
  before any other TensorFlow work in the process). ``one_device``: the first
  GPU, else the CPU.
  """
  if name == "multi_worker_mirrored":
    # Must come before anything initialises the TensorFlow runtime (even listing devices).
    if "TF_CONFIG" not in os.environ:
      logging.warning("train.strategy=multi_worker_mirrored without TF_CONFIG: one worker.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices("GPU")
  if name == "auto":
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
  if name == "mirrored":
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  raise ConfigError(f"Unknown train.strategy {name!r}; valid: {', '.join(config_check.STRATEGIES)}.")


def is_chief(strategy) -> bool:
  """Whether this process writes the workdir: the chief, or worker 0 of a cluster without one."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
