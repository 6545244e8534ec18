"""tools/profile_step.py: the XLA kernels summed by the TF op types they were built from."""

import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_profile_names_the_xla_kernels_by_tf_op_type(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "profile_step.py"),
       "--config=configs/mnist_attention.py", "--config.model.num_steps=3",
       "--config.model.encoder_units=16", "--config.model.decoder_units=16",
       "--config.model.latent_dim=4", "--batch_size=8", "--steps=2", "--jit_compile=true",
       f"--logdir={tmp_path}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  by_type = result["by_op_type_ms_per_step"]
  # The LSTM matmuls and the read's x_hat = x - sigmoid(c) are kernels of the compiled step.
  assert by_type.get("MatMul", 0) > 0
  assert "Sigmoid" in by_type and "Exp" in by_type
  # Nearly every kernel's name is found in the dumped HLO of the training step.
  total = sum(by_type.values())
  assert by_type.get("(unnamed)", 0) < 0.5 * total
  # One new folder per run under --logdir/hlo, holding this run's compiled modules.
  (run_dir,) = os.listdir(tmp_path / "hlo")
  assert glob.glob(str(tmp_path / "hlo" / run_dir / "*after_optimizations.txt"))
