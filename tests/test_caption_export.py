"""The caption decoder's export (alignDRAW): draw-export on a caption model's workdir, every backend
agreeing with the Keras model on the same captions and noise, the manifest's vocabulary, and
draw-sample --caption from the export.

The tiny model comes from the session fixture ``tiny_caption_export`` (tests/conftest.py: a
random alignDRAW of 12 x 10 images, T = 4, exported once through the ``draw-export`` binary).
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from draw_tf.cli import sample_main
from draw_tf.data import caption_grammar
from draw_tf.errors import CaptionError, UsageError
from draw_tf.export import caption_export
from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import self_check
from draw_tf.export import sampler as sampler_lib
from draw_tf.model import caption_decoder
from tests.conftest import tiny_caption_model

FP32, FP16, INT8 = "draw_decoder.tflite", "draw_decoder_fp16.tflite", "draw_decoder_int8.tflite"
CAPTIONS = ("the digit 7 is at the top of the digit 2", "the digit 0 is at the bottom right of the image .",
            "The digit three is on the left of the digit 5", "the digit 9 is on the right of the digit 1")


def _inputs(n, seed=5):
  """``n`` grammar captions (cycled) and noise ``[n, 4, 4]``."""
  ids = np.stack([caption_grammar.encode(CAPTIONS[i % len(CAPTIONS)]) for i in range(n)])
  return np.random.default_rng(seed).standard_normal((n, 4, 4)).astype(np.float32), ids


def test_the_export_graph_is_the_keras_decoder():
  """decode_captioned (the caption LSTM unrolled, the recurrence in blocks, one write pass) gives
  AlignDrawModel.generate's outputs, for every block size and for captions of every length."""
  model = tiny_caption_model()
  config = contract.decoder_config(model, caption_grammar.encoding())
  ids = caption_export.verification_captions(config, 6, seed=2)
  assert (ids > 0).sum(axis=1).max() == 12 and (ids[:, 0] > 0).all()  # every row a caption, one at the limit
  noise = np.random.default_rng(0).standard_normal((6, 4, 4)).astype(np.float32)
  want = model.generate(ids, noise=noise)
  for steps_per_iteration in (1, 3, 4):
    got = tf.function(lambda c, n, k=steps_per_iteration: caption_decoder.decode_captioned(model, c, n, k))(
        ids, noise)
    for key, reference in zip(("images", "canvases", "windows"), want):
      np.testing.assert_allclose(got[key], reference, rtol=0, atol=1e-6, err_msg=key)
  h_lang, mask = caption_decoder.encode_caption(model.cell.caption_encoder, ids)
  keras_h_lang, keras_mask = model.cell.encode_caption(ids)
  np.testing.assert_array_equal(mask, keras_mask)
  np.testing.assert_allclose(h_lang, keras_h_lang, rtol=0, atol=1e-6)  # zeros at padding in both


def test_draw_export_of_a_caption_workdir_writes_a_true_manifest(tiny_caption_export):
  out, manifest = tiny_caption_export.out, tiny_caption_export.manifest
  assert sorted(os.listdir(out)) == sorted(["saved_model", FP32, FP16, INT8, "manifest.json"])
  assert manifest["caption_conditioned"] is True
  # The vocabulary in id order, the limits, and how text becomes ids: the page and phones encode with it.
  assert manifest["caption"] == {**caption_grammar.encoding(), "vocab_size": 23, "input_length": 12}
  assert manifest["caption"]["words"][:3] == ["0", "1", "2"] and manifest["caption"]["max_caption_length"] == 12
  assert manifest["model"]["caption"] == manifest["caption"]
  sigs = manifest["signatures"]
  assert sigs["generate"]["inputs"] == {"captions": {"dtype": "int32", "shape": [-1, 12]},
                                        "noise": {"dtype": "float32", "shape": [-1, 4, 4]}}
  assert sigs["sample"]["inputs"] == {"captions": {"dtype": "int32", "shape": [-1, 12]}}
  assert sigs["generate"]["outputs"]["write_windows"]["shape"] == [-1, 4, 4]
  assert manifest["image_shape"] == [12, 10, 1] and manifest["window_columns"] == list(contract.WINDOW_COLUMNS)
  assert not [op for op in manifest["tflite_ops"] if op.startswith(("CUSTOM", "UNKNOWN"))]
  assert {"WHILE", "GATHER", "SOFTMAX", "RANDOM_STANDARD_NORMAL", "CUMSUM"} <= set(manifest["tflite_ops"])
  verification = manifest["verification"]
  assert verification["float32_tolerance"] == pytest.approx({"images": 1e-3, "canvases": 1e-3, "write_windows": 6e-4})
  assert verification["int8_tolerance"] == pytest.approx({"images": 1e-2, "canvases": 1e-2, "write_windows": 6e-2})
  for name in ("saved_model", FP32):
    for key, diff in verification["max_abs_diff_per_output"][name].items():
      assert diff <= verification["float32_tolerance"][key], (name, key, diff)
  for key, diff in verification["int8_mean_abs_diff_per_output"][INT8].items():  # int8: bounded on average
    assert 0 < diff <= verification["int8_tolerance"][key], (key, diff)
    assert diff < verification["max_abs_diff_per_output"][INT8][key]
  assert len(verification["captions"]["ids"]) == 8
  # The next command draws a caption.
  assert f"draw_decoder.tflite --out={os.path.join(out, 'samples.png')} --caption=" in tiny_caption_export.stderr


@pytest.mark.parametrize("batch", [1, 5])
def test_saved_model_and_tflite_agree_with_keras_on_the_same_captions_and_noise(tiny_caption_export, batch):
  """float32 within the derived tolerance (1e-3 on images), the caption config read back from each file."""
  noise, ids = _inputs(batch)
  keras_sampler = sampler_lib.KerasSampler(tiny_caption_export.model)
  want = keras_sampler.generate(noise, captions=ids)
  tolerance = caption_export.float32_tolerance(keras_sampler.config)
  for path in (tiny_caption_export.out, os.path.join(tiny_caption_export.out, FP32)):
    sampler = sampler_lib.load_sampler(path)
    assert sampler.caption == tiny_caption_export.manifest["caption"]
    diffs = self_check.max_abs_diffs(sampler.generate(noise, captions=ids), want)
    assert all(diffs[k] <= tolerance[k] for k in diffs), (path, diffs)
  assert want.images.shape == (batch, 12, 10, 1) and want.write_windows.shape == (batch, 4, 4)
  # Another caption, the same noise: another picture (the caption reaches the decoder).
  other = sampler_lib.load_sampler(os.path.join(tiny_caption_export.out, FP32)).generate(noise, captions=np.ones_like(ids))
  assert np.abs(other.canvases - want.canvases).max() > 1e-4


def test_int8_stays_inside_its_stated_bound(tiny_caption_export):
  """Dynamic-range int8 within caption_export.int8_tolerance on average (1e-2 on images, 1e-2 px per pixel
  of half the larger side on windows); its mean pixel error below one grey level. float16 stays close."""
  noise, ids = _inputs(16, seed=7)
  keras_sampler = sampler_lib.KerasSampler(tiny_caption_export.model)
  want = keras_sampler.generate(noise, captions=ids)
  bound = caption_export.int8_tolerance(keras_sampler.config)
  got = sampler_lib.load_sampler(os.path.join(tiny_caption_export.out, INT8)).generate(noise, captions=ids)
  diffs = self_check.max_abs_diffs(got, want)
  means, problems = caption_export.int8_problems(INT8, got, want, keras_sampler.config)
  assert problems == [] and all(means[k] <= bound[k] for k in means), means
  assert np.abs(got.images - want.images).mean() < 1 / 255
  assert diffs["images"] > 0  # the int8 file is quantised: its decoder kernel has more than 1,024 weights
  fp16 = sampler_lib.load_sampler(os.path.join(tiny_caption_export.out, FP16)).generate(noise, captions=ids)
  assert self_check.max_abs_diffs(fp16, want)["images"] <= 2e-3


def test_the_int8_check_bounds_the_mean_over_pixels_and_leaves_out_absent_window_columns():
  """int8_problems: one pixel off by 0.5 passes (a moved stroke), every pixel off by 0.02 fails; window
  columns NaN on both sides (an old 3-column file, sampler.full_windows) do not count."""
  config = {"image_shape": [12, 10, 1]}  # half the larger side 6: windows may differ by 0.06 px on average
  want = sampler_lib.Samples(np.zeros((2, 12, 10, 1), np.float32), np.zeros((2, 4, 12, 10, 1), np.float32),
                             np.zeros((2, 4, 4), np.float32))
  one_pixel = want.images.copy()
  one_pixel[0, 3, 4, 0] = 0.5
  windows = np.full((2, 4, 4), 0.05, np.float32)
  windows[..., 3] = np.nan
  absent = want.write_windows.copy()
  absent[..., 3] = np.nan
  means, problems = caption_export.int8_problems("f", sampler_lib.Samples(one_pixel, want.canvases, windows),
                                                 sampler_lib.Samples(want.images, want.canvases, absent), config)
  assert problems == [] and means["images"] == pytest.approx(0.5 / 240) and means["write_windows"] == pytest.approx(0.05)
  means, problems = caption_export.int8_problems("f", sampler_lib.Samples(want.images + 0.02, want.canvases,
                                                                          want.write_windows), want, config)
  assert len(problems) == 1 and "f: mean abs diff over the int8 tolerance: images 0.02 > 0.01" in problems[0]
  _, problems = caption_export.int8_problems("f", sampler_lib.Samples(want.images * np.nan, want.canvases,
                                                                      want.write_windows), want, config)
  assert "images inf" in problems[0]


def test_one_check_bounds_every_artifact_by_its_kind():
  """self_check.check_outputs: a caption decoder's float32 file may be off by 1e-3 at a pixel (its trained
  model's own float32 sensitivity, caption_export) and no more; DRAW's by 1e-4; the SavedModel likewise;
  a caption decoder's int8 file on the mean; NaN fails every kind."""
  captioned, draw = {"image_shape": [12, 10, 1], "caption": {"words": ["0"]}}, {"image_shape": [12, 10, 1]}
  want = sampler_lib.Samples(np.zeros((2, 12, 10, 1), np.float32), np.zeros((2, 4, 12, 10, 1), np.float32),
                             np.zeros((2, 4, 4), np.float32))

  def off_at_one_pixel(value):
    images = want.images.copy()
    images[1, 5, 5, 0] = value
    return sampler_lib.Samples(images, want.canvases, want.write_windows)

  for name, config, value, passes in [(FP32, captioned, 9e-4, True), (FP32, captioned, 2e-3, False),
                                      ("saved_model", captioned, 2e-3, False), (FP32, draw, 9e-5, True),
                                      (FP32, draw, 5e-4, False), (INT8, captioned, 0.5, True),
                                      (INT8, draw, 0.5, True), (INT8, captioned, np.nan, False),
                                      (INT8, draw, np.nan, False)]:
    quantization = "int8" if name == INT8 else "float32"
    diffs, means, problems = self_check.check_outputs(name, off_at_one_pixel(value), want, quantization, config)
    assert (problems == []) is passes, (name, config, value, problems)
    assert diffs["images"] == pytest.approx(value if np.isfinite(value) else np.inf) and diffs["canvases"] == 0
    assert bool(means) is (quantization == "int8" and "caption" in config)  # means only where they are the bound
    assert all(name in p for p in problems)


def test_manifests_record_the_bounds_per_output_and_only_the_means_that_are_bounds():
  """self_check.manifest_bounds: float32 per output for both kinds (one form in every manifest); a caption
  decoder's int8 bound and means, files without means left out; none of it for DRAW."""
  captioned, draw = {"image_shape": [12, 10, 1], "caption": {"words": ["0"]}}, {"image_shape": [12, 10, 1]}
  mean = {"images": 3e-3, "canvases": 4e-3, "write_windows": 0.05}
  record = self_check.manifest_bounds(draw, {INT8: {}, FP32: {}})
  assert record == {"float32_tolerance": dict.fromkeys(["images", "canvases", "write_windows"], 1e-4)}
  record = self_check.manifest_bounds(captioned, {INT8: mean, FP32: {}, "draw_decoder_web_int8.tflite": {}})
  assert record["int8_mean_abs_diff_per_output"] == {INT8: mean}
  assert record["float32_tolerance"] == pytest.approx({"images": 1e-3, "canvases": 1e-3, "write_windows": 6e-4})
  assert record["int8_tolerance"]["images"] == pytest.approx(1e-2)


def test_sample_signature_draws_its_noise_for_the_captions(tiny_caption_export):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  _, ids = _inputs(3)
  path = os.path.join(tiny_caption_export.out, FP32)
  first = Interpreter(model_path=path).get_signature_runner("sample")(captions=ids)
  assert first["images"].shape == (3, 12, 10, 1) and first["write_windows"].shape == (3, 4, 4)
  again = Interpreter(model_path=path).get_signature_runner("sample")(captions=ids)
  np.testing.assert_array_equal(again["images"], first["images"])  # op seed: reproducible


def test_draw_sample_from_the_export_draws_what_keras_draws(tiny_caption_export, tmp_path):
  """draw-sample --model=EXPORT --caption (folder and .tflite) with --seed or --noise: the Keras model's
  pictures of that caption and noise; the model.keras workdir draws them too."""
  model, out = tiny_caption_export.model, tiny_caption_export.out
  ids = np.repeat(caption_grammar.encode(CAPTIONS[0])[None], 3, axis=0)
  want = model.generate(ids, seed=5).images
  for source in (out, os.path.join(out, FP32), tiny_caption_export.workdir):
    path = str(tmp_path / f"{os.path.basename(source)}.npy")
    samples = sample_main.sample_to_file(source, path, num=3, seed=5, caption=CAPTIONS[0])
    np.testing.assert_allclose(np.load(path), want, rtol=0, atol=1e-5, err_msg=source)
    assert samples.images.shape == (3, 12, 10, 1)
  noise, _ = _inputs(2)
  np.save(tmp_path / "noise.npy", noise)
  sample_main.sample_to_file(os.path.join(out, FP32), str(tmp_path / "n.npy"), noise=str(tmp_path / "noise.npy"),
                             caption=CAPTIONS[0])
  np.testing.assert_allclose(np.load(tmp_path / "n.npy"), model.generate(ids[:2], noise=noise).images,
                             rtol=0, atol=1e-5)
  gif = str(tmp_path / "x.gif")
  sample_main.sample_to_file(out, gif, num=2, seed=1, caption=CAPTIONS[1])
  assert os.path.getsize(gif) > 0


def test_a_caption_the_export_cannot_read_is_refused_naming_the_fix(tiny_caption_export, tmp_path):
  out, png = tiny_caption_export.out, str(tmp_path / "x.png")
  with pytest.raises(UsageError, match="caption model.*--caption="):
    sample_main.sample_to_file(out, png, num=2, seed=0)
  with pytest.raises(CaptionError, match="Unknown word 'above'.*The vocabulary: 0 1 2"):
    sample_main.sample_to_file(out, png, num=2, seed=0, caption="the digit 7 is above the digit 2")
  with pytest.raises(CaptionError, match="the limit is 12"):
    sample_main.sample_to_file(out, png, num=2, seed=0, caption=CAPTIONS[0] + " of the digit 3")
  assert not os.path.exists(png)
  lite = sampler_lib.load_sampler(os.path.join(out, FP32))
  noise, ids = _inputs(2)
  with pytest.raises(ValueError, match=r"draws from captions: pass captions=token ids \[N, 12\]"):
    lite.generate(noise)
  with pytest.raises(ValueError, match=r"captions have shape \(2, 6\).*\[N=2, L=12\]"):
    lite.generate(noise, captions=ids[:, :6])
  with pytest.raises(ValueError, match=r"must lie in \[0, 23\)"):
    lite.generate(noise, captions=ids + 30)
