"""Subprocess body for test_distributed.py: fit() on one device vs MirroredStrategy.

Two logical CPU devices must be configured before any TensorFlow op runs, so this
file runs in a fresh interpreter. Prints one JSON line with the differences.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests import helpers  # noqa: E402


def run(strategy, optimizer_name, init_weights, data):
  with strategy.scope():
    model = helpers.tiny_model()
    opt = (keras.optimizers.SGD(0.05) if optimizer_name == "sgd"
           else keras.optimizers.Adam(1e-2))
    model.compile(optimizer=opt)
  model.set_weights(init_weights)
  ds = tf.data.Dataset.from_tensor_slices(data).batch(8)
  hist = model.fit(ds, epochs=2, verbose=0)
  return model.get_weights(), hist.history["nll_bound"]


def main():
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  data = {"images": (rng.uniform(size=(24, 12, 10, 1)) > 0.6).astype(np.float32),
          "noise": rng.normal(size=(24, 3, 4)).astype(np.float32)}
  init = helpers.tiny_model().get_weights()
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  result = {"replicas": mirrored.num_replicas_in_sync}
  for opt in sys.argv[1:] or ["sgd", "adam"]:
    w1, h1 = run(tf.distribute.OneDeviceStrategy("/cpu:0"), opt, init, data)
    w2, h2 = run(mirrored, opt, init, data)
    result[opt] = {
        "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(w1, w2)),
        "max_weight_change": max(float(np.abs(a - b).max()) for a, b in zip(w1, init)),
        "single_nll": h1, "mirrored_nll": h2}
  print("RESULT " + json.dumps(result))


if __name__ == "__main__":
  main()
