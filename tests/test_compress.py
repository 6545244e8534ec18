"""Tests of conceptual compression (draw_tf/training/compress.py and draw-compress)."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf.training import compress
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import ConfigError
from tests import helpers
from tests.conftest import run_module, tiny_config



def _perturbed_model(**kwargs):
  return helpers.perturb_weights(helpers.tiny_model(num_steps=4, latent_dim=3, **kwargs))


def _images(n=3):
  return (np.random.default_rng(1).uniform(size=(n, 12, 10, 1)) > 0.5).astype(np.float32)


def test_code_bits_are_the_prior_mass_of_each_bin():
  """-log2 P(k) with P(k) = Phi((k + 1/2) step) - Phi((k - 1/2) step); the P(k) sum to 1."""
  phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))
  for step in (0.25, 1.0):
    ks = np.arange(-40, 41)
    bits = compress.code_bits(tf.constant(ks, tf.float32), step).numpy()
    want = [-math.log2(phi((k + 0.5) * step) - phi((k - 0.5) * step)) for k in ks[35:46]]
    np.testing.assert_allclose(bits[35:46], want, rtol=1e-5)
    np.testing.assert_allclose(np.sum(2.0 ** -bits.astype(np.float64)), 1.0, rtol=1e-5)


def test_empirical_entropy_bits():
  codes = np.zeros((8, 2, 3), np.int32)
  assert compress.empirical_entropy_bits(codes) == 0.0
  codes[:4, 1, 2] = 1  # one symbol, half 0 and half 1: one bit
  codes[::2, 0, 0] = -3  # another, likewise
  assert compress.empirical_entropy_bits(codes) == pytest.approx(2.0)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_all_steps_finely_quantised_reconstruct_the_posterior_mean_rollout(prior):
  """K = T with a tiny bin: decode(encode(x)) = sigmoid(c_T) of the rollout with z_t = mu_t."""
  model = _perturbed_model(prior=prior)
  images = _images()
  codes = compress.encode(model, images, num_steps=4, quant_step=1e-4, run_eagerly=True)
  assert codes["codes"].shape == (3, 4, 3) and codes["bits"].shape == (3,)
  recon = compress.decode(model, codes["codes"], quant_step=1e-4, seed=0, run_eagerly=True)
  want = tf.sigmoid(model.unroll(tf.constant(images), tf.zeros([3, 4, 3]))["logits"]).numpy()
  np.testing.assert_allclose(recon, want, atol=2e-3)
  # Coarser bins cost fewer bits.
  coarse = compress.encode(model, images, num_steps=4, quant_step=1.0, run_eagerly=True)
  assert np.all(coarse["bits"] < codes["bits"])


def test_uncoded_steps_come_from_the_prior():
  """With K < T the seed of the prior samples changes the picture; with K = T it cannot."""
  model = _perturbed_model()
  images = _images()
  part = compress.encode(model, images, num_steps=2, run_eagerly=True)["codes"]
  a, b = (compress.decode(model, part, seed=s, run_eagerly=True) for s in (0, 1))
  assert np.abs(a - b).max() > 1e-3
  full = compress.encode(model, images, num_steps=4, run_eagerly=True)["codes"]
  np.testing.assert_array_equal(compress.decode(model, full, seed=0, run_eagerly=True),
                                compress.decode(model, full, seed=1, run_eagerly=True))
  # The coded steps are the same in both: the first two codes of K = 4 are those of K = 2.
  np.testing.assert_array_equal(full[:, :2], part)


def test_bad_steps_fail_clearly():
  model = _perturbed_model()
  with pytest.raises(ConfigError, match="between 1 and the model's T = 4"):
    compress.encode(model, _images(), num_steps=5, run_eagerly=True)


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory, fake_cache):
  """A workdir (config.json and an untrained checkpoint) of the tiny config on the fake MNIST."""
  workdir = str(tmp_path_factory.mktemp("compress") / "workdir")
  config = tiny_config(fake_cache)
  os.makedirs(workdir)
  workdir_lib.check_or_write_config(config, workdir)
  model = draw_tf.DrawModel(**config.model)
  tf.train.Checkpoint(model=model).save(os.path.join(workdir, "checkpoints", "ckpt"))
  return workdir


def test_compress_and_decompress_a_workdir(tiny_workdir, tmp_path):
  out = str(tmp_path / "codes.npz")
  result = compress.compress_workdir(tiny_workdir, 2, out, quant_step=0.5, num_images=5)
  codes = compress.load_codes(out)
  assert codes["codes"].shape == (5, 2, 4) and codes["steps"] == 2
  assert result["bits_per_image"] == pytest.approx(float(codes["bits"].mean()))
  decoded = compress.decompress_file(tiny_workdir, out, str(tmp_path / "recon.npy"))
  recon = np.load(tmp_path / "recon.npy")
  originals = compress.test_images(tiny_workdir, 5)
  assert recon.shape == originals.shape == (5, 28, 28, 1)
  assert decoded["mse"] == pytest.approx(float(np.mean((recon - originals) ** 2)), rel=1e-5)


@pytest.mark.slow
def test_draw_compress_binary(tiny_workdir, tmp_path):
  """draw-compress encodes, then --decode writes a PNG grid; bad input gives one clear line."""
  codes = str(tmp_path / "codes.npz")
  proc = run_module("draw_tf.cli.compress_main", f"--workdir={tiny_workdir}", "--steps=2", f"--out={codes}",
                    "--num_images=4")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])["num_images"] == 4
  assert f"draw-compress: wrote {codes} (codes of 4 images" in proc.stderr
  assert "Encoding, K = 2: 4/4 images (100%)" in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("draw-compress: next: draw-compress ")
  png = str(tmp_path / "recon.png")
  proc = run_module("draw_tf.cli.compress_main", f"--workdir={tiny_workdir}", "--decode", f"--codes={codes}",
                    f"--out={png}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.getsize(png) > 0
  proc = run_module("draw_tf.cli.compress_main", f"--workdir={tiny_workdir}", "--steps=9", f"--out={codes}")
  assert proc.returncode == 1 and "between 1 and the model's T = 4" in proc.stderr
