"""The analytic cost model matches the hand count in issue 4, and the benchmark runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))  # tools/flops.py and tools/gemm_rate.py, used by the tools only

import flops  # noqa: E402
PAPER = dict(image_shape=(28, 28, 1), num_steps=64, latent_dim=100, encoder_units=256,
             decoder_units=256, read_size=2, write_size=5)


def test_paper_mnist_forward_macs_match_the_hand_count():
  """Encoder 4*256*(8+256+256), decoder 4*256*(100+256), posterior 256*200: ~1.93 MFLOP/step."""
  parts = flops.forward_macs_per_step(**PAPER)
  assert parts["encoder_lstm"] == 532480
  assert parts["decoder_lstm"] == 364544
  assert parts["posterior"] == 51200
  assert 1.92e6 < 2 * sum(parts.values()) < 1.94e6
  assert flops.train_flops_per_image(PAPER) == pytest.approx(0.3706e9, rel=1e-3)


def test_no_attention_reads_and_writes_whole_images():
  parts = flops.forward_macs_per_step(**{**PAPER, "read_attention": False, "write_attention": False})
  assert parts["encoder_lstm"] == 4 * 256 * (2 * 784 + 256 + 256)
  assert parts["write_head"] == 256 * 784
  assert "read_filterbank" not in parts


def test_gemm_shapes_cover_forward_and_both_backward_products():
  shapes = flops.lstm_gemm_shapes(PAPER, 100)
  assert (100, 520, 1024) in shapes and (100, 1024, 520) in shapes and (520, 100, 1024) in shapes
  assert (100, 356, 1024) in shapes


def _run_tool(tmp_path, tool, *flags):
  """Runs tools/TOOL on a tiny config (12 x 12, T = 3, 16 units, batch 8); its last JSON line."""
  cfg = tmp_path / "tiny_tool_config.py"
  cfg.write_text(
      "import ml_collections\n"
      "def get_config():\n"
      "  c = ml_collections.ConfigDict()\n"
      "  c.model = ml_collections.ConfigDict(dict(image_shape=(12, 12, 1), num_steps=3,\n"
      "      latent_dim=4, encoder_units=16, decoder_units=16, read_size=2, write_size=3))\n"
      "  c.train = ml_collections.ConfigDict(dict(batch_size=8, jit_compile=False))\n"
      "  return c\n")
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", tool), f"--config={cfg}", *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_benchmark_tool_reports_a_json_line(tmp_path):
  """tools/benchmark.py on a tiny model prints positive throughput and limit figures."""
  result = _run_tool(tmp_path, "benchmark.py", "--steps=2", "--repeats=2", "--warmup=1",
                     "--gemm_iters=5", "--json")
  assert result["images_per_s"] > 0 and result["limit_images_per_s"] > 0
  assert 0 < result["fraction_of_limit"]
  # Each of the 2 timed blocks has its own limit, from GEMM timings before and after it.
  assert len(result["gemm_gflops_repeats"]) == 3 and len(result["step_ms_repeats"]) == 2
  assert result["fraction_of_limit"] == pytest.approx(
      float(np.median(result["fraction_of_limit_repeats"])), abs=1e-3)
  assert result["train_gflop_per_image"] == pytest.approx(
      flops.train_flops_per_image(dict(image_shape=(12, 12, 1), num_steps=3, latent_dim=4,
                                       encoder_units=16, decoder_units=16, read_size=2,
                                       write_size=3)) / 1e9, abs=1e-4)
  assert result["peak_rss_gb"] > 0
  assert result["images_per_cpu_s"] > 0 and result["gemm_gflops_per_cpu_s"] > 0
  assert result["fraction_of_limit_cpu"] > 0  # rates are rounded: no exact identity at this size


@pytest.mark.parametrize("channels", [1, 3])
def test_attention_benchmark_checks_both_formulations_agree(channels):
  """tools/bench_attention.py: the library's matmul read/write has the einsum form's gradients."""
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "bench_attention.py"), "--batch_size=3",
       "--image_size=9", f"--channels={channels}", "--read_size=3", "--write_size=2",
       "--steps=2", "--repeats=1", "--rounds=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["matmul_cpu_ms_per_step"] > 0 and result["einsum_cpu_ms_per_step"] > 0


def test_conv_variants_are_refused_rather_than_miscounted():
  with pytest.raises(ValueError, match="read_features='conv'.*benchmark"):
    flops.forward_macs_per_step(**dict(PAPER, read_features="conv"))
  with pytest.raises(ValueError, match="encoder='conv'"):
    flops.forward_macs_per_step(**dict(PAPER, encoder="conv"))


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gemm_timer_times_the_product_it_claims(dtype, jit_compile):
  """The timed loop computes iters x (a @ b) in the dtype asked for (nothing skipped or upcast)."""
  import tensorflow as tf
  from gemm_rate import GemmTimer
  timer = GemmTimer([(4, 6, 5)], iters=3, dtype=dtype, jit_compile=jit_compile)
  loop, a, b = timer._loops[0]
  assert a.dtype == tf.as_dtype(dtype) and loop(a, b).dtype == tf.as_dtype(dtype)
  a32, b32 = tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy()
  expected = 3 * (a32 @ b32)  # exact operands: a and b were rounded to dtype already
  # Each result is at most k + iters = 9 roundings of partial sums no larger than
  # 3 |a| @ |b|, each off by at most half a unit in the last place: 2**-24 (float32)
  # or 2**-8 (bfloat16, 8 significant bits) of the magnitude.
  unit = 2.0**-24 if dtype == "float32" else 2.0**-8
  tol = 9 * unit * (3 * np.abs(a32) @ np.abs(b32)).max()
  np.testing.assert_allclose(tf.cast(loop(a, b), tf.float32).numpy(), expected, atol=tol)
  result = timer.measure(repeats=1)
  assert result["gflops"] > 0 and result["per_shape"][0]["shape"] == [4, 6, 5]


def test_gemm_bench_tool_reports_each_dtype_and_runtime(tmp_path):
  """tools/bench_gemm.py: a row per dtype, runtime and shape group; float32 is its own 1.0."""
  result = _run_tool(tmp_path, "bench_gemm.py", "--iters=3", "--rounds=1")
  keys = {(r["dtype"], r["runtime"], r["shapes"]) for r in result["rates"]}
  assert keys == {(d, rt, s) for d in ("float32", "bfloat16") for rt in ("tf", "xla")
                  for s in ("per_step", "all_steps")}
  assert all(r["gflops"] > 0 for r in result["rates"])
  assert all(r["speedup_vs_float32"] == 1.0 for r in result["rates"] if r["dtype"] == "float32")
  assert result["all_steps_shape"] == [result["per_step_shapes"][2][0], 3 * 8,
                                       result["per_step_shapes"][2][2]]
  assert result["cpu"].endswith(f"; {os.cpu_count()} cores)")  # tools/gemm_rate.py cpu_model
