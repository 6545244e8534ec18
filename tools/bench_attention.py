r"""Micro-benchmark of DRAW's attention read and write inside a T-step loop.

    python tools/bench_attention.py --batch_size=100 --read_size=2 --write_size=5

Times forward + backward of one read (image and error image, ``N x N``) and one
write (``N x N`` patch) per step, filterbanks included, in a ``tf.while_loop``
with a dynamic batch dimension (as in training), for two formulations of the
products:

- ``matmul``: :func:`draw_tf.model.filterbank.read_channels_first` and
  :func:`draw_tf.model.filterbank.write_patch` (what the library uses);
- ``einsum``: the channels-last ``tf.einsum`` form the library used before
  (kept here only as the baseline).

Reports milliseconds of wall time and of process CPU time per step (CPU time
stays comparable when other jobs share the machine), alternating the two
formulations ``--rounds`` times. The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from draw_tf.cli import plumbing as cli
from draw_tf.model import filterbank as fb  # noqa: E402

_BATCH = flags.DEFINE_integer("batch_size", 100, "Images per batch.")
_SIZE = flags.DEFINE_integer("image_size", 28, "Square image side.")
_CHANNELS = flags.DEFINE_integer("channels", 1, "Image channels.")
_READ = flags.DEFINE_integer("read_size", 2, "Read grid N.")
_WRITE = flags.DEFINE_integer("write_size", 5, "Write grid N.")
_STEPS = flags.DEFINE_integer("steps", 16, "Loop steps per call.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed calls per round; the median is kept.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating rounds of the two formulations.")


def read_einsum(images, error_images, fx, fy):
  """The former channels-last einsum read of ``[x, x_hat]``: ``[batch, n, n, 2C]``."""
  both = tf.concat([images, error_images], axis=-1)
  cols = tf.einsum("bhwc,biw->bhic", both, fx)
  return tf.einsum("bjh,bhic->bjic", fy, cols)


def write_einsum(patch, fx, fy):
  """The former channels-last einsum write: ``[batch, H, W, C]``."""
  rows = tf.einsum("bjic,biw->bjwc", patch, fx)
  return tf.einsum("bjh,bjwc->bhwc", fy, rows)


def read_matmul(images, error_images, fx, fy):
  """The library's read of ``[x, x_hat]``: ``[batch, 2C, n, n]``."""
  both = tf.concat([fb.channels_first(images), fb.channels_first(error_images)], axis=1)
  return fb.read_channels_first(both, fx, fy)


def write_matmul(patch, fx, fy):
  return fb.write_patch(patch, fx, fy, tf.ones_like(fx[:, 0, 0]))


def step_fn(read, write, size, channels, n_read, n_write, steps):
  """A traced fwd+bwd function of ``steps`` read+write steps."""
  spec = [tf.TensorSpec([None, size, size, channels])] * 2 + [
      tf.TensorSpec([None, n_write, n_write, channels]), tf.TensorSpec([None, 5]),
      tf.TensorSpec([None, 5])]

  @tf.function(input_signature=spec)
  def run(images, error_images, patch, raw_read, raw_write):
    with tf.GradientTape() as tape:
      tape.watch([images, error_images, patch, raw_read, raw_write])

      def body(t, total, raw_read, raw_write):
        gx, gy, s2, d, _ = fb.attention_params(raw_read, n_read, size, size)
        fx, fy = fb.filterbank(gx, gy, s2, d, n_read, size, size)
        gx, gy, s2, d, _ = fb.attention_params(raw_write, n_write, size, size)
        fx2, fy2 = fb.filterbank(gx, gy, s2, d, n_write, size, size)
        glimpse = read(images, error_images, fx, fy)
        canvas = write(patch, fx2, fy2)
        total += tf.reduce_sum(tf.square(glimpse)) + tf.reduce_sum(tf.square(canvas))
        return t + 1, total, raw_read * 0.99, raw_write * 0.99

      _, total, _, _ = tf.while_loop(lambda t, *_: t < steps, body,
                                     (0, 0.0, raw_read, raw_write))
    return tape.gradient(total, [images, error_images, patch, raw_read, raw_write])

  return run


def main(argv):
  del argv
  b, size, c = _BATCH.value, _SIZE.value, _CHANNELS.value
  rng = np.random.default_rng(0)
  args = [tf.constant(rng.uniform(size=(b, size, size, c)), tf.float32),
          tf.constant(rng.normal(size=(b, size, size, c)), tf.float32),
          tf.constant(rng.normal(size=(b, _WRITE.value, _WRITE.value, c)), tf.float32),
          tf.constant(rng.normal(size=(b, 5)) * 0.1, tf.float32),
          tf.constant(rng.normal(size=(b, 5)) * 0.1, tf.float32)]
  fns = {name: step_fn(r, w, size, c, _READ.value, _WRITE.value, _STEPS.value)
         for name, r, w in [("einsum", read_einsum, write_einsum),
                            ("matmul", read_matmul, write_matmul)]}
  grads = {name: [g.numpy() for g in fn(*args)] for name, fn in fns.items()}  # trace + warm
  for a, g in zip(grads["einsum"], grads["matmul"]):
    np.testing.assert_allclose(g, a, rtol=1e-4, atol=1e-4)  # same maths
  wall = {name: [] for name in fns}
  cpu = {name: [] for name in fns}
  for _ in range(_ROUNDS.value):
    for name, fn in fns.items():
      for _ in range(_REPEATS.value):
        t0, c0 = time.perf_counter(), time.process_time()
        [g.numpy() for g in fn(*args)]
        wall[name].append((time.perf_counter() - t0) / _STEPS.value * 1e3)
        cpu[name].append((time.process_time() - c0) / _STEPS.value * 1e3)
  result = {"batch_size": b, "image": [size, size, c], "read_size": _READ.value,
            "write_size": _WRITE.value, "load_avg_1m": round(os.getloadavg()[0], 2)}
  for name in fns:
    result[f"{name}_wall_ms_per_step"] = round(statistics.median(wall[name]), 3)
    result[f"{name}_cpu_ms_per_step"] = round(statistics.median(cpu[name]), 3)
  result["cpu_ratio_einsum_over_matmul"] = round(
      result["einsum_cpu_ms_per_step"] / result["matmul_cpu_ms_per_step"], 2)
  print(f"read+write fwd+bwd per step: einsum {result['einsum_cpu_ms_per_step']} ms CPU "
        f"({result['einsum_wall_ms_per_step']} wall), matmul {result['matmul_cpu_ms_per_step']} "
        f"ms CPU ({result['matmul_wall_ms_per_step']} wall), load {result['load_avg_1m']}",
        file=sys.stderr)
  print(json.dumps(result))


if __name__ == "__main__":
  cli.run(main, "bench_attention")
