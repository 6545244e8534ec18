"""model.fit under MirroredStrategy over two logical CPUs equals one device."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mirrored_fit_gives_the_same_weights_as_one_device():
  """Same data and noise: weights after 6 steps agree to 1e-5 (SGD and Adam).

  SGD is sensitive to the gradient's scale, so a wrong cross-replica loss
  reduction (e.g. not dividing by num_replicas_in_sync) fails this test.
  """
  proc = subprocess.run([sys.executable, "-m", "tests.distributed_worker"], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
  result = json.loads(lines[-1][len("RESULT "):])
  assert result["replicas"] == 2
  for opt in ("sgd", "adam"):
    r = result[opt]
    assert r["max_weight_change"] > 1e-3, r  # training really moved the weights
    assert r["max_weight_diff"] < 1e-5, r
    np.testing.assert_allclose(r["mirrored_nll"], r["single_nll"], rtol=1e-5)
