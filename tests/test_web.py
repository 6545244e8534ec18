"""The exported decoder draws in a real browser: draw-export --web, served on
127.0.0.1, run by LiteRT.js in Debian's headless Chromium, gives the same images
and per-step canvases as the Python LiteRT interpreter on the same noise.

Needs /usr/bin/chromium (``apt-get install chromium``) and ``npm ci`` (LiteRT.js,
playwright-core); .ci/run installs both. Without them the test is skipped, except
under CI (``CI`` set), where it fails.

A second test opens the page that ``draw-export --web`` (no ``--workdir``) writes
for a shipped pretrained model (a tiny one made by tools/make_pretrained.py in a
temporary folder), untouched: it must draw with the packaged int8 decoder, and
without a manifest say that there is no decoder. A third opens a page whose
manifest is of format 1 (decoders returning 3 window columns, before sigma was
exported): it must still draw, and a format-2 manifest over such a decoder must
say what is wrong.

The last two open the page of several shipped models (a tiny DRAW named mnist_attention, a
second DRAW decoder of other shapes, a tiny caption model, a classifier, all in a temporary
folder): it opens with mnist_attention, switches to the second DRAW decoder, and its caption
box draws a typed caption with the caption decoder, each as Python LiteRT draws from the
packaged file.

``DRAW_WEB_FOLDER=OUT/web`` runs the same check on another export's page
(e.g. a trained MNIST model) and ``DRAW_WEB_SCREENSHOT=FILE.png`` keeps the
screenshot (``docs/web_page.png``, shown in docs/export.md, was taken so).
"""

import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import web_export
from tests import helpers
from tests.conftest import run_module
from tests.web_serving import ROOT
from tests.web_serving import require_browser as _require_browser
from tests.web_serving import serve

NUM_IMAGES = 6


@pytest.fixture(scope="module")
def web_folder(request, tmp_path_factory):
  _require_browser()
  if os.environ.get("DRAW_WEB_FOLDER"):
    return os.environ["DRAW_WEB_FOLDER"]
  tiny_export = request.getfixturevalue("tiny_export")
  out = tmp_path_factory.mktemp("web_export") / "export"
  proc = run_module("draw_tf.cli.export_main", f"--workdir={tiny_export.workdir}",
                    f"--output_dir={out}", "--web")
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "python -m http.server --directory" in proc.stdout
  return str(out / "web")


@pytest.fixture(scope="module")
def server(web_folder):
  """``http.server`` on 127.0.0.1 (a free port), serving the web folder."""
  with serve(web_folder) as url:
    yield url


def _litert_runner(path):
  """The ``generate`` signature of a batch-1 model through ai_edge_litert (1 thread, as LiteRT.js's wasm)."""
  with open(path, "rb") as f:
    return sampler_lib.tflite_interpreter(f.read(), path, num_threads=1).get_signature_runner(contract.GENERATE)


def _python_litert(path, noise, repeats=20):
  """The batch-1 model through ai_edge_litert (1 thread, as LiteRT.js's wasm):
  outputs stacked over the noise rows, and the median ms per image."""
  runner = _litert_runner(path)
  rows = [runner(noise=noise[i:i + 1]) for i in range(len(noise))]
  times = []
  for _ in range(repeats):
    for i in range(len(noise)):
      start = time.perf_counter()
      runner(noise=noise[i:i + 1])
      times.append(1000 * (time.perf_counter() - start))
  outs = sampler_lib.Samples(*(np.concatenate([r[k] for r in rows]) for k in contract.OUTPUTS))
  return outs, float(np.median(times))


def test_page_draws_the_same_pictures_as_python_litert(web_folder, server, tmp_path):
  """Same noise (uploaded as .npy) -> same images, canvases and windows, float32
  within 1e-4 of Python LiteRT; int8 runs too; a screenshot shows the drawing."""
  with open(os.path.join(web_folder, "manifest.json")) as f:
    manifest = json.load(f)
  steps, latent_dim = manifest["num_steps"], manifest["latent_dim"]
  noise = np.random.default_rng(16).standard_normal(
      (NUM_IMAGES, steps, latent_dim)).astype(np.float32)
  noise_path, result_path = tmp_path / "noise.npy", tmp_path / "result.json"
  screenshot = os.environ.get("DRAW_WEB_SCREENSHOT") or str(tmp_path / "page.png")
  np.save(noise_path, noise)
  start = time.time()
  proc = subprocess.run(
      ["node", os.path.join(ROOT, "tests", "web_driver.mjs"), server + "index.html",
       str(noise_path), str(result_path), screenshot],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  browser_seconds = time.time() - start
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(result_path) as f:
    result = json.load(f)
  assert result["errors"] == []
  h, w, c = manifest["image_shape"]
  # Format 2 names the columns (the model's windows [N, T, 4]); a format-1 page (DRAW_WEB_FOLDER) had 3.
  columns = manifest.get("window_columns", contract.LEGACY_WINDOW_COLUMNS)
  if not os.environ.get("DRAW_WEB_FOLDER"):
    assert manifest["format_version"] == web_export.MANIFEST_FORMAT == 2
    assert columns == list(contract.WINDOW_COLUMNS)
  shapes = {"images": (NUM_IMAGES, h, w, c), "canvases": (NUM_IMAGES, steps, h, w, c),
            "write_windows": (NUM_IMAGES, steps, len(columns))}
  report = [f"browser run {browser_seconds:.1f} s"]
  for entry in manifest["models"]:
    got = result[entry["quantization"]]
    assert "error" not in got, got
    assert got["n"] == NUM_IMAGES
    browser = sampler_lib.Samples(*(np.asarray(got[k], np.float32).reshape(shapes[k])
                                    for k in contract.OUTPUTS))
    want, python_ms = _python_litert(os.path.join(web_folder, entry["file"]), noise)
    diffs = {k: float(np.max(np.abs(a - b))) for k, a, b in zip(contract.OUTPUTS, browser, want)}
    browser_ms = float(np.median(got["msPerImage"]))
    report.append(f"{entry['quantization']}: max abs diff browser vs Python LiteRT {diffs}; "
                  f"ms per image: browser {browser_ms:.2f}, Python LiteRT {python_ms:.2f}")
    assert all(np.isfinite(v) for v in diffs.values()), diffs
    if entry["quantization"] == "float32":
      assert max(diffs.values()) <= 1e-4, diffs
  # The page's float32 pictures are the decoder's: the same noise through the
  # dynamic-batch export that phones embed (when it is beside the page).
  phone = os.path.join(os.path.dirname(web_folder), "draw_decoder.tflite")
  if os.path.isfile(phone):
    want = sampler_lib.load_sampler(phone).generate(noise)
    got = np.asarray(result["float32"]["canvases"], np.float32).reshape(shapes["canvases"])
    diff = float(np.max(np.abs(got - want.canvases)))
    report.append(f"float32 canvases vs draw_decoder.tflite (batch {NUM_IMAGES}): {diff:.3g}")
    assert diff <= 1e-4
  print("\n" + "\n".join(report))
  # The screenshot is a picture of the page (not blank): grey board, white
  # strokes, red window boxes.
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
  red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
  assert red.sum() > 50, "no write window boxes in the screenshot"


@pytest.fixture(scope="module")
def pretrained_page(tiny_pretrained, tmp_path_factory):
  """``draw-export --web --output_dir=OUT`` (no --workdir) with the tiny pretrained model as the shipped one."""
  _require_browser()
  out = tmp_path_factory.mktemp("pretrained_page") / "out"
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("DRAW_TF_PRETRAINED_DIR", tiny_pretrained.models_dir)
    proc = run_module("draw_tf.cli.export_main", "--web", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "the pretrained decoder 'tiny'" in proc.stderr
  return str(out / "web")


def _open_page(folder, tmp_path, name):
  """Serves ``folder``, opens its page without touching it (tests/web_driver_open.mjs); the result."""
  result_path = tmp_path / f"{name}.json"
  with serve(folder) as url:
    proc = subprocess.run(
        ["node", os.path.join(ROOT, "tests", "web_driver_open.mjs"), url + "index.html", str(result_path),
         str(tmp_path / f"{name}.png")], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(result_path) as f:
    return json.load(f)


def _page_noise_and_canvases(run, decoder):
  """The noise ``[n, T, z]`` and canvases ``[n, T, H, W, C]`` a page run reports, shaped by the
  decoder's manifest entry (``num_steps``, ``latent_dim``, ``image_shape``)."""
  steps, latent_dim, (h, w, c) = decoder["num_steps"], decoder["latent_dim"], decoder["image_shape"]
  n = run["n"]
  return (np.asarray(run["noise"], np.float32).reshape(n, steps, latent_dim),
          np.asarray(run["canvases"], np.float32).reshape(n, steps, h, w, c))


def test_page_opens_with_the_pretrained_decoder_and_draws(pretrained_page, tiny_pretrained, tmp_path):
  """Opened with no action, the page of a shipped model draws with its packaged int8 decoder
  (the very file of the pretrained folder) and names the model; the pictures are those of
  Python LiteRT on the page's own noise. Without a manifest the page says there is no decoder."""
  packaged = os.path.join(tiny_pretrained.models_dir, "tiny", "draw_decoder_web_int8.tflite")
  with open(os.path.join(pretrained_page, "manifest.json")) as f:
    page_file = json.load(f)["models"][0]["file"]  # models/tiny/draw_decoder_web_int8.tflite
  with open(packaged, "rb") as a, open(os.path.join(pretrained_page, page_file), "rb") as b:
    assert a.read() == b.read()
  result = _open_page(pretrained_page, tmp_path, "pretrained")
  assert result["errors"] == [] and result["errorText"] == ""
  assert result["models"] == ["int8"] and result["quantization"] == "int8"
  assert result["source"] == "seed 0" and "Pretrained model tiny" in result["sourceText"]
  noise, canvases = _page_noise_and_canvases(result, tiny_pretrained.manifest["decoder"])
  want, _ = _python_litert(packaged, noise, repeats=1)
  diff = float(np.max(np.abs(canvases - want.canvases)))
  print(f"\npretrained page, int8: max abs diff of the canvases, browser vs Python LiteRT: {diff:.3g}")
  # int8 weights dequantised by the same runtime (XNNPACK) in both: float32 arithmetic apart.
  assert diff <= 1e-4
  assert np.max(np.abs(canvases[:, -1] - canvases[:, 0])) > 1e-3  # it drew (a 4-step test model draws faintly)
  bare = tmp_path / "bare"
  shutil.copytree(pretrained_page, bare)
  os.remove(bare / "manifest.json")
  result = _open_page(str(bare), tmp_path, "bare")
  assert "there is no decoder in this folder" in result["errorText"]
  assert "draw-export --workdir=DIR --output_dir=OUT --web" in result["errorText"]


def test_page_of_the_package_opens_with_the_shipped_mnist_attention_and_draws_digits(tmp_path, monkeypatch):
  """A new user's page: ``draw-export --web`` over the package's own models (no override) opens
  with the shipped ``mnist_attention`` int8 decoder, with no training, and draws what Python
  LiteRT draws from the page's noise: ink on a dark background, not a blank canvas."""
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  _require_browser()
  monkeypatch.delenv("DRAW_TF_PRETRAINED_DIR", raising=False)
  assert "mnist_attention" in pretrained.names()
  out = tmp_path / "out"
  proc = run_module("draw_tf.cli.export_main", "--web", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = _open_page(str(out / "web"), tmp_path, "package")
  assert result["errors"] == [] and result["errorText"] == ""
  assert result["quantization"] == "int8" and "Pretrained model mnist_attention" in result["sourceText"]
  noise, canvases = _page_noise_and_canvases(result, pretrained.read_manifest("mnist_attention")["decoder"])
  packaged = pretrained.path("mnist_attention", "draw_decoder_web_int8.tflite")
  want, _ = _python_litert(packaged, noise, repeats=1)
  # The same int8 file through the same runtime (XNNPACK) in both: float32 arithmetic apart, which
  # 64 recurrent steps may grow a little beyond the 4-step test model's 1e-4.
  # Browser and Python run the same int8 file with other float32 kernels (wasm against native
  # SIMD): their rounding differs by a few ulps per step, and 64 recurrent steps of a trained model
  # grow such differences. How much, this model itself says: the change of Python's own pictures
  # when the noise moves by 2^-20 of itself (a few float32 ulps).
  moved, _ = _python_litert(packaged, noise * np.float32(1 + 2.0 ** -20), repeats=1)
  growth = float(np.max(np.abs(moved.canvases - want.canvases)))
  diff = float(np.max(np.abs(canvases - want.canvases)))
  print(f"\nshipped page: browser vs Python LiteRT {diff:.3g}; Python vs Python on noise moved by 2^-20: "
        f"{growth:.3g}; first 16 steps {float(np.max(np.abs(canvases - want.canvases)[:, :16])):.3g}")
  assert float(np.max(np.abs(canvases - want.canvases)[:, :16])) <= 1e-4  # before the growth: rounding alone
  assert diff <= max(10 * growth, 1e-4)
  images = canvases[:, -1]  # sigmoid(c_T): the drawn pictures
  assert images.min() >= 0.0 and images.max() <= 1.0
  ink = (images > 0.5).mean(axis=(1, 2, 3))
  # An MNIST digit covers about 10-20 % of the 28 x 28 canvas; blank (0) or flooded (1) would be wrong.
  assert np.all((ink > 0.03) & (ink < 0.4)), ink


def test_page_of_manifest_format_1_with_a_three_column_decoder_still_draws(web_folder, tiny_export, tmp_path,
                                                                          monkeypatch):
  """A page folder of format 1 (no ``window_columns``; its decoder returns write_windows [1, T, 3])
  draws with today's page, boxes and all; today's manifest over that decoder names the mismatch."""
  if os.environ.get("DRAW_WEB_FOLDER"):
    pytest.skip("needs the tiny export's page")
  original = export_lib.signature_functions
  monkeypatch.setattr(export_lib, "signature_functions", helpers.format1_signature_functions(original))
  data = web_export._convert_batch1(  # pylint: disable=protected-access
      tiny_export.model, str(tmp_path / "batch1_saved_model"), "float32", 4)
  monkeypatch.setattr(export_lib, "signature_functions", original)
  old = tmp_path / "format1"
  shutil.copytree(web_folder, old)
  name = web_export.WEB_TFLITE_FILES["float32"]
  (old / name).write_bytes(data)
  with open(old / "manifest.json") as f:
    manifest = json.load(f)
  manifest["models"] = [{"file": name, "quantization": "float32"}]
  new_manifest = dict(manifest)
  manifest["format_version"] = 1
  del manifest["window_columns"]
  (old / "manifest.json").write_text(json.dumps(manifest))
  result = _open_page(str(old), tmp_path, "format1")
  assert result["errors"] == [] and result["errorText"] == "", result.get("errorText")
  steps, latent_dim = manifest["num_steps"], manifest["latent_dim"]
  n = result["n"]
  noise = np.asarray(result["noise"], np.float32).reshape(n, steps, latent_dim)
  want, _ = _python_litert(str(old / name), noise, repeats=1)
  assert want.write_windows.shape == (n, steps, 3)
  windows = np.asarray(result["write_windows"], np.float32).reshape(n, steps, 3)
  assert float(np.max(np.abs(windows - want.write_windows))) <= 1e-4
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(Image.open(tmp_path / "format1.png").convert("RGB")).astype(int)
  red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
  assert red.sum() > 50, "no write window boxes on the format-1 page"
  # Today's manifest (4 columns) over the old decoder: a clear message, not a garbled drawing.
  (old / "manifest.json").write_text(json.dumps(new_manifest))
  result = _open_page(str(old), tmp_path, "mismatch")
  assert "write_windows" in result["errorText"] and "re-run draw-export --web" in result["errorText"]


# --------------------------------------------------------------------------- the page of several pretrained models
SECOND = "a_small"  # sorts before mnist_attention: the page must open with mnist_attention all the same
CAPTION_TEXT = "the digit 7 is at the top of the digit 2"


def _page_only_pretrained(web_folder, folder, name):
  """A pretrained folder holding what the page reads of a drawing model (its batch-1 int8 decoder, shapes,
  self-check), taken from another export's page: a second DRAW decoder of other shapes (12 x 10, T = 4)."""
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  with open(os.path.join(web_folder, "manifest.json")) as f:
    page = json.load(f)
  os.makedirs(folder)
  shutil.copyfile(os.path.join(web_folder, web_export.WEB_TFLITE_FILES["int8"]),
                  os.path.join(folder, pretrained.WEB_FILE))
  manifest = {"name": name, "task": "generate", "decoder": page["model"], "window_columns": page["window_columns"],
              "web": {"file": pretrained.WEB_FILE, "verification": page["verification"]},
              "test": {}, "training": {}, "commit": "test",
              "files": {pretrained.WEB_FILE: pretrained.file_entry(os.path.join(folder, pretrained.WEB_FILE))}}
  with open(os.path.join(folder, "manifest.json"), "w") as f:
    json.dump(manifest, f)


@pytest.fixture(scope="module")
def pretrained_kinds_page(pretrained_kinds, web_folder, tmp_path_factory):
  """``draw-export --web --output_dir=OUT`` (no --workdir) over four shipped models: ``mnist_attention`` (the
  tool's tiny DRAW), ``a_small`` (a second DRAW decoder, :func:`_page_only_pretrained`), ``captions`` (the
  tool's tiny caption model) and ``classifier`` (no decoder: not offered); the page driven once by
  tests/web_driver_pretrained.mjs. Returns ``(models_dir, web folder, export's stderr, driver result)``."""
  if os.environ.get("DRAW_WEB_FOLDER"):
    pytest.skip("needs the tiny export's page")
  root = tmp_path_factory.mktemp("pretrained_kinds_page")
  models = root / "models"
  for source, name in (("tiny", "mnist_attention"), ("captions", "captions"), ("classifier", "classifier")):
    shutil.copytree(os.path.join(pretrained_kinds.models_dir, source), models / name)
  manifest = json.loads((models / "mnist_attention" / "manifest.json").read_text())
  (models / "mnist_attention" / "manifest.json").write_text(json.dumps({**manifest, "name": "mnist_attention"}))
  _page_only_pretrained(web_folder, str(models / SECOND), SECOND)
  out = root / "out"
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("DRAW_TF_PRETRAINED_DIR", str(models))
    proc = run_module("draw_tf.cli.export_main", "--web", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-4000:]
  result_path = root / "result.json"
  with serve(str(out / "web")) as url:
    driver = subprocess.run(
        ["node", os.path.join(ROOT, "tests", "web_driver_pretrained.mjs"), url + "index.html", str(result_path),
         str(root / "page.png"), SECOND, CAPTION_TEXT], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
  return str(models), str(out / "web"), proc.stderr, json.loads(result_path.read_text())



def _litert_run(path, noise, captions=None):
  """The batch-1 model through ai_edge_litert, one row at a time (a caption decoder's with its captions)."""
  runner = _litert_runner(path)
  rows = [runner(noise=noise[i:i + 1], **({} if captions is None else {"captions": captions[i:i + 1]}))
          for i in range(len(noise))]
  return sampler_lib.Samples(*(np.concatenate([r[k] for r in rows]) for k in contract.OUTPUTS))


def _page_canvases_match(run, path, config, captions=None):
  """The page's canvases of ``run`` are Python LiteRT's on the page's noise (int8 dequantised by the
  same runtime in both: float32 arithmetic apart); returns them ``[n, T, H, W, C]``."""
  noise, canvases = _page_noise_and_canvases(run, config)
  ids = None if captions is None else np.repeat(np.asarray(captions, np.int32)[None], len(noise), axis=0)
  want = _litert_run(path, noise, ids)
  assert float(np.max(np.abs(canvases - want.canvases))) <= 1e-4
  return canvases


def test_page_of_the_shipped_models_opens_with_mnist_attention_and_switches_to_another(pretrained_kinds_page):
  """The page offers every shipped decoder (not the classifier), opens with mnist_attention though
  another DRAW name sorts first, draws with its packaged file; picked in the select, the second DRAW
  decoder (other shapes) is fetched and draws, as Python LiteRT draws from its file."""
  models, web, stderr, result = pretrained_kinds_page
  assert "the pretrained decoder 'mnist_attention'" in stderr and f"it also offers {SECOND}, captions" in stderr
  assert result["errors"] == [] and result["options"] == [SECOND, "captions", "mnist_attention"]
  opened, switched = result["opened"], result["switched"]
  assert opened["decoder"] == opened["selected"] == "mnist_attention" and opened["quantization"] == "int8"
  assert "Pretrained model mnist_attention" in opened["sourceText"] and opened["errorText"] == ""
  with open(os.path.join(web, "manifest.json")) as f:
    manifest = json.load(f)
  decoders = {d["name"]: d for d in manifest["decoders"]}
  assert manifest["default_decoder"] == "mnist_attention" and set(decoders) == {SECOND, "captions", "mnist_attention"}
  for run, name in ((opened, "mnist_attention"), (switched, SECOND)):
    path = os.path.join(models, name, "draw_decoder_web_int8.tflite")
    with open(path, "rb") as a, open(os.path.join(web, decoders[name]["models"][0]["file"]), "rb") as b:
      assert a.read() == b.read()  # the packaged file itself
    _page_canvases_match(run, path, decoders[name])
  assert switched["decoder"] == switched["selected"] == SECOND and "Pretrained model a_small" in switched["sourceText"]
  assert decoders[SECOND]["image_shape"] != decoders["mnist_attention"]["image_shape"]
  assert f"/models/{SECOND}/draw_decoder_web_int8.tflite" in result["requests"]


def test_page_of_the_shipped_models_draws_a_typed_caption_with_the_caption_decoder(pretrained_kinds_page):
  """Typed into the caption box while a DRAW decoder draws, a caption is drawn by the shipped caption
  decoder (the select follows), with caption_grammar.encode's ids, as Python LiteRT draws it."""
  from draw_tf.data import caption_grammar  # pylint: disable=g-import-not-at-top
  models, web, _, result = pretrained_kinds_page
  run = result["captioned"]
  assert result["errors"] == [] and run["errorText"] == ""
  assert run["decoder"] == run["selected"] == "captions" and run["caption"] == CAPTION_TEXT
  with open(os.path.join(web, "manifest.json")) as f:
    config = {d["name"]: d for d in json.load(f)["decoders"]}["captions"]
  assert config["caption"]["input_length"] == 12  # the tiny model's L: the grammar's limit, no padding added
  assert run["captions"] == caption_grammar.encode(CAPTION_TEXT).tolist()
  canvases = _page_canvases_match(run, os.path.join(models, "captions", "draw_decoder_web_int8.tflite"), config,
                                  run["captions"])
  assert np.all(np.isfinite(canvases)) and canvases.min() >= 0 and canvases.max() <= 1
