"""draw-export and the backends it produces: every artifact reloads and agrees with
the Keras model, the manifest tells the truth, bad files give clear errors and a
failed self-check publishes nothing.

The tiny exported model comes from the session fixture ``tiny_export``
(tests/conftest.py), exported once through the ``draw-export`` binary.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf.runs import workdir as workdir_lib
from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import self_check
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import tflite_convert
from tests import helpers
from tests.conftest import TINY_EXPORT_MODEL

FP32 = "draw_decoder.tflite"
FP16 = "draw_decoder_fp16.tflite"
INT8 = "draw_decoder_int8.tflite"


def _noise(n, seed=5):
  return np.random.default_rng(seed).standard_normal((n, 4, 4)).astype(np.float32)


def _max_diffs(got, want):
  return self_check.max_abs_diffs(got, want)


def test_export_writes_every_artifact_and_a_true_manifest(tiny_export):
  out, manifest = tiny_export.out, tiny_export.manifest
  assert sorted(os.listdir(out)) == sorted(
      ["saved_model", FP32, FP16, INT8, "manifest.json"])
  assert manifest["image_shape"] == [12, 10, 1]
  assert manifest["num_steps"] == 4 and manifest["latent_dim"] == 4
  assert manifest["model"]["write_size"] == 3
  sigs = manifest["signatures"]
  assert set(sigs) == {"generate", "sample"}
  assert sigs["generate"]["inputs"] == {"noise": {"dtype": "float32", "shape": [-1, 4, 4]}}
  assert sigs["sample"]["inputs"] == {"num_samples": {"dtype": "int32", "shape": []}}
  # The model's windows [N, T, 4] as they are (manifest format 2; format 1 had 3 columns).
  assert sigs["generate"]["outputs"]["write_windows"]["shape"] == [-1, 4, 4]
  assert manifest["format_version"] == export_lib.MANIFEST_FORMAT == 2
  assert manifest["window_columns"] == list(contract.WINDOW_COLUMNS)
  assert contract.WINDOW_COLUMNS == ("centre_x", "centre_y", "stride", "sigma")
  # sha256 and sizes describe the files on disk.
  for name in (FP32, FP16, INT8):
    entry = manifest["files"][name]
    assert entry == {**export_lib.file_entry(os.path.join(out, name)),
                     "tflite_ops": entry["tflite_ops"]}
    assert entry["size_bytes"] > 1000
  assert manifest["files"]["saved_model"] == export_lib.folder_entry(
      os.path.join(out, "saved_model"))
  # Builtin ops only; the fused loop and the in-model noise are there.
  assert manifest["tflite_op_set"] == "TFLITE_BUILTINS"
  assert not [op for op in manifest["tflite_ops"] if op.startswith(("CUSTOM", "UNKNOWN"))]
  assert {"WHILE", "RANDOM_STANDARD_NORMAL", "CUMSUM"} <= set(manifest["tflite_ops"])
  diffs = manifest["verification"]["max_abs_diff"]
  assert set(diffs) == {"saved_model", FP32, FP16, INT8}
  assert diffs["saved_model"] <= 1e-4 and diffs[FP32] <= 1e-4
  assert "Exported to" in tiny_export.stdout


@pytest.mark.parametrize("batch", [1, 5])
def test_keras_saved_model_and_tflite_agree_on_fixed_noise(tiny_export, batch):
  """The three backends give the same pictures (1e-4) at any batch size."""
  noise = _noise(batch)
  want = sampler_lib.KerasSampler(tiny_export.model).generate(noise)
  for path in [os.path.join(tiny_export.out, "saved_model"), os.path.join(tiny_export.out, FP32)]:
    got = sampler_lib.load_sampler(path).generate(noise)
    diffs = _max_diffs(got, want)
    assert max(diffs.values()) <= 1e-4, (path, diffs)
  assert want.images.shape == (batch, 12, 10, 1)
  assert want.write_windows.shape == (batch, 4, len(contract.WINDOW_COLUMNS))
  # The same windows as DrawModel.generate, every column (sigma included).
  np.testing.assert_allclose(want.write_windows, tiny_export.model.generate(noise=noise).windows,
                             rtol=0, atol=1e-6)


def test_reduced_precision_artifacts_stay_inside_their_bounds(tiny_export):
  """float16 and dynamic-range int8 stay close to float32.

  Bounds (images and canvases are in [0, 1]; write windows are in pixels):
  - float16 stores weights with a relative rounding error of 2^-11 (4.9e-4) and
    computes in float32. Each logit moves by a few such units and sigmoid's slope
    is <= 1/4, so images move by < 1e-3; we allow 2e-3. Window centres scale
    the raw parameters by (size + 1) / 2 ~ 6 px here: allow 2e-2 px.
  - int8 rounds each weight column to 1/254 of its largest magnitude (about 0.4%
    of the range, 8x the float16 error) and quantises activations per row at run
    time: allow 10x the float16 bounds (2e-2 on images, 0.2 px on windows), far
    below one grey level in 8-bit output (1 / 255 = 3.9e-3) on average.
  Measured on this model: float16 6e-5 / 1e-3 px, int8 2e-4 / 3.5e-3 px.
  """
  noise = _noise(32, seed=7)
  want = sampler_lib.KerasSampler(tiny_export.model).generate(noise)
  bounds = {FP16: (2e-3, 2e-2), INT8: (2e-2, 0.2)}
  for name, (pixel_bound, window_bound) in bounds.items():
    got = sampler_lib.load_sampler(os.path.join(tiny_export.out, name)).generate(noise)
    diffs = _max_diffs(got, want)
    assert diffs["images"] <= pixel_bound and diffs["canvases"] <= pixel_bound, (name, diffs)
    assert diffs["write_windows"] <= window_bound, (name, diffs)
    assert np.abs(got.images - want.images).mean() < 1 / 255
    recorded = tiny_export.manifest["verification"]["max_abs_diff_per_output"][name]
    assert recorded["images"] <= pixel_bound and recorded["write_windows"] <= window_bound


def test_sample_signature_draws_noise_inside_the_model(tiny_export):
  from ai_edge_litert.interpreter import Interpreter
  path = os.path.join(tiny_export.out, FP32)
  sample = Interpreter(model_path=path).get_signature_runner("sample")
  first = sample(num_samples=np.array(3, np.int32))
  assert first["images"].shape == (3, 12, 10, 1)
  assert first["canvases"].shape == (3, 4, 12, 10, 1)
  assert first["write_windows"].shape == (3, 4, 4)
  assert 0 <= first["images"].min() and first["images"].max() <= 1
  second = sample(num_samples=np.array(3, np.int32))
  assert np.abs(second["images"] - first["images"]).max() > 1e-6  # fresh noise each call
  again = Interpreter(model_path=path).get_signature_runner("sample")(
      num_samples=np.array(3, np.int32))
  np.testing.assert_array_equal(again["images"], first["images"])  # op seed: reproducible
  loaded = tf.saved_model.load(os.path.join(tiny_export.out, "saved_model"))
  out = loaded.signatures["sample"](num_samples=tf.constant(2))
  assert out["images"].shape == (2, 12, 10, 1)


def test_tflite_files_describe_the_model(tiny_export):
  for name in (FP32, FP16, INT8):
    with open(os.path.join(tiny_export.out, name), "rb") as f:
      config = sampler_lib.read_tflite_config(f.read())
    assert config == contract.decoder_config(tiny_export.model)
  lite = sampler_lib.load_sampler(os.path.join(tiny_export.out, INT8))
  assert lite.config["write_size"] == 3 and lite.image_shape == (12, 10, 1)


def test_corrupt_tflite_gives_a_clear_error(tiny_export, tmp_path):
  with open(os.path.join(tiny_export.out, FP32), "rb") as f:
    data = f.read()
  truncated = tmp_path / "truncated.tflite"
  truncated.write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match="not a valid TFLite model"):
    sampler_lib.load_sampler(str(truncated))
  garbage = tmp_path / "garbage.tflite"
  garbage.write_bytes(b"this is not a model at all" * 10)
  with pytest.raises(ValueError, match="not a TFLite model"):
    sampler_lib.load_sampler(str(garbage))
  renamed = tmp_path / "model.bin"
  renamed.write_bytes(data)
  with pytest.raises(ValueError, match="must be a .tflite file"):
    sampler_lib.load_sampler(str(renamed))


def _tflite(tmp_path, name, fn, input_spec):
  """A .tflite file whose only signature is ``name`` (another model than ours)."""
  module = tf.Module()
  module.fn = tf.function(fn, input_signature=[input_spec])
  saved = str(tmp_path / f"{name}_saved_model")
  tf.saved_model.save(module, saved, signatures={name: module.fn.get_concrete_function()})
  path = tmp_path / f"{name}_{input_spec.name}.tflite"
  path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(saved).convert())
  return str(path)


def test_tflite_with_a_mismatching_signature_gives_a_clear_error(tiny_export, tmp_path):
  """Another model's .tflite is refused with a message naming the mismatch."""
  other = _tflite(tmp_path, "generate", lambda x: {"y": x * 2.0},
                  tf.TensorSpec([None, 3], tf.float32, name="x"))
  with pytest.raises(ValueError, match=r"signature 'generate' takes \['x'\]"):
    sampler_lib.load_sampler(other)
  noise_spec = tf.TensorSpec([None, 4, 4], tf.float32, name="noise")
  serving = _tflite(tmp_path, "serving_default", lambda noise: {"images": noise}, noise_spec)
  with pytest.raises(ValueError, match="not 'generate'"):
    sampler_lib.load_sampler(serving)
  wrong_outputs = _tflite(tmp_path, "generate", lambda noise: {"images": noise}, noise_spec)
  with pytest.raises(ValueError, match="missing"):
    sampler_lib.load_sampler(wrong_outputs)
  # The right file, with noise made for another model.
  lite = sampler_lib.load_sampler(os.path.join(tiny_export.out, FP32))
  with pytest.raises(ValueError, match=r"num_steps=4, latent_dim=4"):
    lite.generate(np.zeros((2, 64, 100), np.float32))


def _broken_signature_functions(offset):
  original = export_lib.signature_functions

  def broken(model, steps_per_iteration=4):
    generate, _ = original(model, steps_per_iteration)

    def off_generate(noise):
      out = dict(generate(noise))
      out["images"] = out["images"] + offset
      return out

    def sample(num_samples):
      return off_generate(tf.random.normal(tf.stack([num_samples, 4, 4]), seed=1))

    return off_generate, sample

  return broken


@pytest.mark.parametrize("failure", ["saved_model_off_by_1e-3", "tflite_all_nan"])
def test_failed_self_check_publishes_nothing(tmp_path, monkeypatch, failure):
  """A wrong artifact makes export raise; no manifest, no new folder, old export kept."""
  model = helpers.tiny_model(**TINY_EXPORT_MODEL)
  out = tmp_path / "export"
  if failure == "saved_model_off_by_1e-3":
    monkeypatch.setattr(export_lib, "signature_functions", _broken_signature_functions(1e-3))
    out.mkdir()  # a previous export (its manifest says so): the only kind an export may replace
    (out / "manifest.json").write_text('{"format_version": 1, "files": {}}')
    (out / "previous_export.txt").write_text("kept")
  else:
    # What a plain tf.Module conversion produces: a model that runs and gives NaN.
    real = sampler_lib.TFLiteSampler._generate
    monkeypatch.setattr(sampler_lib.TFLiteSampler, "_generate",
                        lambda self, noise: tuple(a * np.nan for a in real(self, noise)))
  with pytest.raises(export_lib.ExportVerificationError, match="nothing was written") as err:
    export_lib.export_model(model, str(out), verify_batch_size=2)
  assert ("1e-4" in str(err.value) or "0.0001" in str(err.value) or "NaN" in str(err.value))
  if failure == "saved_model_off_by_1e-3":
    assert sorted(os.listdir(out)) == ["manifest.json", "previous_export.txt"]
  else:
    assert not out.exists()
  assert sorted(os.listdir(tmp_path)) == (["export"] if out.exists() else [])  # no temp folders


def test_an_export_of_manifest_format_1_still_loads_and_samples(tiny_export, tmp_path, monkeypatch):
  """A format-1 export (write_windows [N, T, 3]: no sigma) loads as a folder, a SavedModel and a
  .tflite file; every backend returns [N, T, 4] with sigma NaN and the rest as today's export;
  draw-sample draws its GIF."""
  from draw_tf.cli import sample_main  # pylint: disable=g-import-not-at-top
  original = export_lib.signature_functions
  monkeypatch.setattr(export_lib, "signature_functions", helpers.format1_signature_functions(original))
  out = tmp_path / "format1_export"
  saved = out / contract.SAVED_MODEL_DIR
  export_lib.save_saved_model(tiny_export.model, str(saved))
  lite = tflite_convert.add_tflite_metadata(
      tflite_convert.convert_to_tflite(str(saved), "float32"), contract.CONFIG_NAME,
      contract.encode_config(contract.decoder_config(tiny_export.model)))
  (out / FP32).write_bytes(lite)
  (out / "manifest.json").write_text(json.dumps({"format_version": 1, "files": {}}))
  monkeypatch.setattr(export_lib, "signature_functions", original)
  noise = _noise(3)
  want = sampler_lib.KerasSampler(tiny_export.model).generate(noise)
  for path in (str(out), str(saved), str(out / FP32)):
    sampler = sampler_lib.load_sampler(path)
    assert sampler.window_columns == 3, path
    got = sampler.generate(noise)
    assert got.write_windows.shape == (3, 4, 4), path
    assert np.isnan(got.write_windows[..., 3]).all(), path
    np.testing.assert_allclose(got.write_windows[..., :3], want.write_windows[..., :3], atol=1e-4)
    np.testing.assert_allclose(got.images, want.images, atol=1e-4)
  gif = tmp_path / "format1.gif"
  samples = sample_main.sample_to_file(str(out), str(gif), 2, 0, None, None)
  assert gif.stat().st_size > 0 and samples.write_windows.shape == (2, 4, 4)


def test_write_windows_with_another_column_count_are_refused():
  """3 (format 1) and 4 columns load; anything else names the shape and the columns expected."""
  config = {"image_shape": [12, 10, 1], "num_steps": 4}
  outputs = {k: ("float32", s) for k, s in contract.output_shapes(config).items()}
  assert contract.check_outputs("x.tflite", outputs, config) == 4
  three = {**outputs, "write_windows": ("float32", [-1, 4, 3])}
  assert contract.check_outputs("x.tflite", three, config) == 3
  with pytest.raises(ValueError, match=r"write_windows.*\[-1, 4, 5\], expected float32 \[-1, 4, 4\].*sigma"):
    contract.check_outputs("x.tflite", {**outputs, "write_windows": ("float32", [-1, 4, 5])}, config)


def test_load_model_from_a_workdir(tiny_export, tmp_path):
  model = export_lib.load_model(tiny_export.workdir)
  assert isinstance(model, draw_tf.DrawModel) and model.num_steps == 4
  # Our message, or draw_tf.training.train's where that module exists (it is tried first).
  with pytest.raises(FileNotFoundError, match="no model to export|not a training workdir"):
    export_lib.load_model(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no such folder"):
    export_lib.load_model(str(tmp_path / "missing"))
  keras.utils.set_random_seed(0)


def test_export_of_a_draw_train_workdir(trained_tiny, tmp_path):
  """draw-export restores a real training workdir's latest checkpoint and verifies it."""
  workdir, _, _, _ = trained_tiny
  model = export_lib.load_model(workdir)
  want = workdir_lib.load_model_from_workdir(workdir)
  for a, b in zip(model.get_weights(), want.get_weights()):
    np.testing.assert_array_equal(a, b)
  from tests.conftest import run_module  # pylint: disable=g-import-not-at-top
  out = tmp_path / "export"
  proc = run_module("draw_tf.cli.export_main", f"--workdir={workdir}", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert (out / "manifest.json").exists() and (out / "draw_decoder.tflite").exists()
