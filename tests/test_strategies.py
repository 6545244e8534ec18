"""train_and_evaluate under mirrored and multi-worker strategies equals one device.

The runs clip the gradient at every step (grad_clip_norm=1), so a wrong
cross-replica clip or loss reduction shows up as different weights. The bounds
come from float32 rounding over the steps taken, relative to how far the
weights moved (tests/tolerances.py), not from one machine's result.
"""

import glob
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from draw_tf.training import train as train_lib
from draw_tf.model.draw_model import DrawModel
from tests import tolerances
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(cache_dir, **extra):
  return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", DRAW_TF_DATA_DIR=cache_dir,
              **extra)


def _result(stdout):
  lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
  return json.loads(lines[-1][len("RESULT "):]) if lines else None


def _weights(workdir):
  with np.load(sorted(glob.glob(os.path.join(workdir, "weights_*.npz")))[0]) as f:
    return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _max_diff(a, b):
  return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def _strategy_config(cache_dir, strategy):
  """The tiny config, clipping every step (grad norms are ~10-500), 2 epochs of 6 steps, with XLA
  (``jit_compile = "auto"``, as configs/tiny.py: XLA under the strategies is what these runs check)."""
  return tiny_config(cache_dir, train__strategy=strategy, train__grad_clip_norm=1.0,
                     train__steps_per_epoch=6, train__checkpoint_every_steps=3, train__jit_compile="auto")


@pytest.fixture(scope="module")
def one_device(fake_cache, tmp_path_factory):
  """``(weights, history)`` of the reference run on one device."""
  workdir = str(tmp_path_factory.mktemp("one_device"))
  model, history = train_lib.train_and_evaluate(_strategy_config(fake_cache, "one_device"), workdir)
  return model.get_weights(), history


def _run_worker(mode, workdir, cache_dir):
  proc = subprocess.run([sys.executable, "-m", "tests.train_worker", mode, workdir, cache_dir],
                        cwd=ROOT, env=_env(cache_dir), capture_output=True, text=True, timeout=600)
  result = _result(proc.stdout)
  assert proc.returncode == 0 and result, proc.stdout[-2000:] + proc.stderr[-4000:]
  return result[mode]


def _bounds(fake_cache, single):
  """``(weight bound, relative bound)`` from float32 rounding over the 12 steps (tests/tolerances.py)."""
  config = _strategy_config(fake_cache, "one_device")
  keras.utils.set_random_seed(config.train.seed)
  initial = DrawModel(**config.model).get_weights()  # what train_and_evaluate starts from
  moved = _max_diff(single, initial)
  steps = config.train.steps_per_epoch * config.train.num_epochs
  assert 1e-3 < moved < 2 * steps * config.train.learning_rate  # really trained, from these weights
  relative = tolerances.relative_reorder_bound(
      steps, config.train.batch_size, config.model.num_steps,
      max(config.model.encoder_units, config.model.decoder_units), int(np.prod(config.model.image_shape)))
  # Under what a wrong reduction gives (> 1e-3: the keras_clipping test below; measured 0.05).
  assert relative * moved < 1e-3
  return relative * moved, relative


def test_mirrored_on_two_cpus_matches_one_device_with_clipping(fake_cache, one_device, tmp_path):
  single, history = one_device
  assert min(history["grad_norm"]) > 2.0  # clipping to 1.0 acted at every step
  mirrored = _run_worker("mirrored", str(tmp_path), fake_cache)
  assert mirrored["replicas"] == 2 and mirrored["step"] == 12
  bound, relative = _bounds(fake_cache, single)
  assert _max_diff(single, _weights(str(tmp_path / "mirrored"))) < bound
  for key in ("loss", "grad_norm", "val_nll_bound"):
    np.testing.assert_allclose(mirrored["history"][key], history[key], rtol=relative)


@pytest.mark.slow
def test_keras_per_replica_clipping_alone_would_not_match_one_device(fake_cache, one_device, tmp_path):
  """Without DrawModel.cross_replica_clip, Keras 3 clips each replica's share: other weights."""
  _run_worker("keras_clipping", str(tmp_path), fake_cache)
  assert _max_diff(one_device[0], _weights(str(tmp_path / "keras_clipping"))) > 1e-3


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_multi_worker_mirrored_with_two_local_workers_matches_one_device(fake_cache, one_device, tmp_path):
  """Two worker processes on 127.0.0.1 (TF_CONFIG), one CPU each: same weights as one device."""
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  procs = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "tests.train_worker", "multi_worker", str(tmp_path), fake_cache],
        cwd=ROOT, env=_env(fake_cache, TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=600))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  for proc, (out, err) in zip(procs, outputs):
    assert proc.returncode == 0 and _result(out), out[-2000:] + err[-4000:]
  chief = _result(outputs[0][0])["multi_worker"]
  assert chief["replicas"] == 2 and chief["step"] == 12

  single, history = one_device
  bound, relative = _bounds(fake_cache, single)
  workers = sorted(glob.glob(str(tmp_path / "multi_worker" / "weights_*.npz")))
  assert len(workers) == 2
  for path in workers:
    with np.load(path) as f:
      weights = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    assert _max_diff(single, weights) < bound
  np.testing.assert_allclose(chief["history"]["loss"], history["loss"], rtol=relative)
  np.testing.assert_allclose(chief["history"]["val_nll_bound"], history["val_nll_bound"], rtol=relative)
  # Only the chief wrote the workdir's checkpoints and pictures.
  assert os.path.exists(str(tmp_path / "multi_worker" / "samples" / "drawing.gif"))
