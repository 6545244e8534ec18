"""draw-sample: every backend, every output type, the same pictures, clear errors."""

import os

import numpy as np
import pytest
from PIL import Image

from draw_tf.cli import sample_main
from draw_tf.export import sampler as sampler_lib
from tests.conftest import run_module


def _backends(tiny_export):
  return {"workdir": tiny_export.workdir,
          "export_folder": tiny_export.out,
          "saved_model": os.path.join(tiny_export.out, "saved_model"),
          "tflite": os.path.join(tiny_export.out, "draw_decoder.tflite")}


@pytest.fixture
def noise_file(tmp_path):
  path = str(tmp_path / "noise.npy")
  np.save(path, np.random.default_rng(11).standard_normal((5, 4, 4)).astype(np.float32))
  return path


def test_every_backend_writes_every_output_type_with_the_same_images(tiny_export, tmp_path,
                                                                     noise_file):
  reference = sampler_lib.KerasSampler(tiny_export.model).generate(np.load(noise_file))
  want, want_windows = reference.images, reference.write_windows
  assert want_windows.shape == (5, 4, 4)
  for backend, path in _backends(tiny_export).items():
    npy, png, gif = (str(tmp_path / f"{backend}.{ext}") for ext in ("npy", "png", "gif"))
    sample_main.sample_to_file(path, npy, noise=noise_file)
    images = np.load(npy)
    assert images.dtype == np.float32 and images.shape == (5, 12, 10, 1)
    np.testing.assert_allclose(images, want, atol=1e-4, err_msg=backend)
    sample_main.sample_to_file(path, png, noise=noise_file)
    assert Image.open(png).format == "PNG"
    samples = sample_main.sample_to_file(path, gif, noise=noise_file)
    # Every backend returns the model's windows [N, T, 4] (centre x, y, stride, sigma).
    np.testing.assert_allclose(samples.write_windows, want_windows, atol=1e-4, err_msg=backend)
    with Image.open(gif) as frames:
      assert frames.format == "GIF" and frames.n_frames == 4 + 1  # T steps + final picture


def test_the_same_seed_gives_the_same_pictures_on_every_backend(tiny_export, tmp_path):
  results = {}
  for backend, path in _backends(tiny_export).items():
    out = str(tmp_path / f"{backend}.npy")
    results[backend] = sample_main.sample_to_file(path, out, num=3, seed=42).images
  want = tiny_export.model.generate(3, seed=42).images
  for backend, images in results.items():
    np.testing.assert_allclose(images, want, atol=1e-4, err_msg=backend)


def test_bad_requests_give_clear_errors(tiny_export, tmp_path, noise_file):
  tflite = _backends(tiny_export)["tflite"]
  with pytest.raises(ValueError, match="unknown output type '.jpg'"):
    sample_main.sample_to_file(tflite, str(tmp_path / "x.jpg"))
  wrong = str(tmp_path / "wrong.npy")
  np.save(wrong, np.zeros((2, 7, 4), np.float32))
  with pytest.raises(ValueError, match=r"noise has shape \(2, 7, 4\).*num_steps=4"):
    sample_main.sample_to_file(tflite, str(tmp_path / "x.npy"), noise=wrong)
  not_npy = tmp_path / "noise.txt"
  not_npy.write_text("1 2 3")
  with pytest.raises(ValueError, match="not a NumPy .npy array"):
    sample_main.sample_to_file(tflite, str(tmp_path / "x.npy"), noise=str(not_npy))
  with pytest.raises(FileNotFoundError, match="no such file or folder"):
    sample_main.sample_to_file(str(tmp_path / "missing.tflite"), str(tmp_path / "x.png"))
  corrupt = tmp_path / "corrupt.tflite"
  corrupt.write_bytes(open(tflite, "rb").read()[:5000])
  with pytest.raises(ValueError, match="corrupt"):
    sample_main.sample_to_file(str(corrupt), str(tmp_path / "x.png"), noise=noise_file)
  assert not [f for f in os.listdir(tmp_path) if f.startswith("x.")]  # nothing written


def test_draw_sample_binary(tiny_export, tmp_path, noise_file):
  """The binary as a user runs it: status 0 and a file; status 1 and one clear line."""
  out = str(tmp_path / "cli.npy")
  tflite = _backends(tiny_export)["tflite"]
  ok = run_module("draw_tf.cli.sample_main", f"--model={tflite}", f"--out={out}",
                  f"--noise={noise_file}")
  assert ok.returncode == 0, ok.stderr[-3000:]
  reference = sampler_lib.KerasSampler(tiny_export.model).generate(np.load(noise_file))
  want, want_windows = reference.images, reference.write_windows
  assert want_windows.shape == (5, 4, 4)
  np.testing.assert_allclose(np.load(out), want, atol=1e-4)



def test_draw_sample_main_exits_with_one_clear_line(tiny_export, tmp_path, capsys):
  """A bad request exits with status 1 and a one-line message, not a traceback."""
  from absl import flags
  tflite = _backends(tiny_export)["tflite"]
  flags.FLAGS([  # parse in-process: cheaper than a second subprocess
      "draw-sample", f"--model={tflite}", f"--out={tmp_path / 'x.bmp'}"])
  try:
    with pytest.raises(SystemExit) as exit_info:
      sample_main.main(["draw-sample"])
  finally:
    flags.FLAGS.unparse_flags()
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("draw-sample: error: --out=") and "unknown output type '.bmp'" in err
