"""model.fit under MirroredStrategy over two logical CPUs equals one device."""

import json
import os
import subprocess
import sys

import numpy as np

from tests import tolerances

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mirrored_fit_gives_the_same_weights_as_one_device():
  """Same data and noise: weights after 6 steps agree to float32 rounding (SGD and Adam).

  The bound is S * terms * u of how far the weights moved (tests/tolerances.py:
  6 steps, batch 8, T = 3, 8 units, 12x10 images: 1.7e-4 of the movement). SGD is sensitive
  to the gradient's scale, so a wrong cross-replica loss reduction (e.g. not
  dividing by num_replicas_in_sync) moves the weights by a fraction of order
  one of their movement and fails this test.
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
    relative = tolerances.relative_reorder_bound(6, 8, 3, 8, 12 * 10)
    assert r["max_weight_diff"] < relative * r["max_weight_change"], r
    np.testing.assert_allclose(r["mirrored_nll"], r["single_nll"], rtol=relative)
