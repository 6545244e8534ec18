"""The page of a caption decoder (alignDRAW): its caption encoder gives Python's token ids, and in
Debian's headless Chromium a typed caption is drawn as Python LiteRT draws it from the same ids and
noise; a word outside the vocabulary or a caption past the limit is one message on the page.

The encoder test needs node only; the browser test needs /usr/bin/chromium and ``npm ci``
(tests/web_serving.py: skipped without them, except under CI). The page comes from
``draw-export --web``'s writer on the tiny caption model of tests/conftest.py (``tiny_caption_export``).
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from draw_tf.data import caption_grammar
from draw_tf.export import caption_export
from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import sampler as sampler_lib
from draw_tf.export import web_export
from tests.web_serving import ROOT, require_browser, serve

CAPTION = "The digit seven is at the top of the digit 2"  # capitals, a number word, no period
UNKNOWN = "the digit 7 is above the digit 2"
LONG = "the digit 7 is at the top of the digit 2 of the digit 3"
AGAIN = "the digit 4 is at the bottom left of the image."


def _python_error_kind(message: str) -> str:
  for kind in ("Unknown word", "the limit is", "is empty"):
    if kind in message:
      return kind
  return message


def test_the_page_encodes_captions_as_python_does(tmp_path):
  """export/web/caption.js on every caption of the grammar and on typed variants (case, number words,
  periods, whitespace of every kind Python's str.split knows, unknown words, too many tokens, empty):
  the same ids as caption_grammar.encode, or the same error (the same message for unknown words)."""
  if not shutil.which("node"):
    pytest.skip("no node (apt-get install nodejs)")
  typed = ["", "   ", ".", "..", "THE DIGIT 3 IS ON THE LEFT OF THE DIGIT 5.", "the digit seven is at the top of the digit two",
           "the  digit\t7 is\nat the top of the digit 2 .", "the digit 7.", "digit.digit", "the digit 7 . .",
           UNKNOWN, "the digit 10", LONG, "the\u00a0digit\u20037\x1cis\x85at\u3000the top", "the\ufeffdigit 7",
           "constructor", "toString of the digit", "the digit 7 is at the top of the digit 2 . .",
           "Ze digit 7 is at ze top", "the digit 7 is at the top of the image"]
  captions = [caption_grammar.caption_text(*row) for row in caption_grammar.ALL_LABELS] + typed
  spec = {**caption_grammar.encoding(), "vocab_size": 23, "input_length": 14}  # L wider than the limit: padded
  cases, result = tmp_path / "cases.json", tmp_path / "result.json"
  cases.write_text(json.dumps({"spec": spec, "captions": captions}))
  proc = subprocess.run(["node", os.path.join(ROOT, "tests", "caption_encode.mjs"), str(cases), str(result)],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  page = json.loads(result.read_text())
  kinds = set()
  for text, got in zip(captions, page):
    try:
      want = np.pad(caption_grammar.encode(text), (0, 2)).tolist()
    except ValueError as e:
      kinds.add(_python_error_kind(str(e)))
      assert got.get("name") == "CaptionError", (text, got)
      assert _python_error_kind(got["error"]) == _python_error_kind(str(e)), (text, got["error"], str(e))
      if "Unknown word" in str(e) and "\\" not in repr(text):
        assert got["error"] == str(e)
      continue
    assert got == {"ids": want}, text
  assert kinds == {"Unknown word", "the limit is", "is empty"}  # each kind of error met


@pytest.fixture(scope="module")
def caption_page(tiny_caption_export, tmp_path_factory):
  """The page of the tiny caption model: what ``draw-export --web`` writes to OUT/web beside the export
  (``web_export.write_web_folder`` on the workdir's model; the export itself is ``tiny_caption_export``)."""
  require_browser()
  web = str(tmp_path_factory.mktemp("caption_page") / "web")
  web_export.write_web_folder(export_lib.load_model(tiny_caption_export.workdir), web)
  return web


def _python_litert(path, noise, captions):
  """The batch-1 page model through ai_edge_litert, one row at a time; outputs stacked."""
  with open(path, "rb") as f:
    runner = sampler_lib.tflite_interpreter(f.read(), path, num_threads=1).get_signature_runner(contract.GENERATE)
  rows = [runner(noise=noise[i:i + 1], captions=captions[i:i + 1]) for i in range(len(noise))]
  return sampler_lib.Samples(*(np.concatenate([r[k] for r in rows]) for k in contract.OUTPUTS))


def test_page_draws_a_typed_caption_as_python_litert_does(caption_page, tiny_caption_export, tmp_path):
  """Typed into the caption box: the ids of caption_grammar.encode, and the page's images, canvases and
  windows those of Python LiteRT on the page's noise (and of Keras, within the export's float32 bound);
  an unknown word and a caption past the limit are one message each, nothing drawn, nothing crashed."""
  with open(os.path.join(caption_page, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["caption_conditioned"] and manifest["caption"]["words"] == list(caption_grammar.WORDS)
  assert manifest["signature"]["inputs"]["captions"] == {"dtype": "int32", "shape": [1, 12]}
  result_path, screenshot = tmp_path / "result.json", str(tmp_path / "page.png")
  with serve(caption_page) as url:
    proc = subprocess.run(
        ["node", os.path.join(ROOT, "tests", "web_driver_caption.mjs"), url + "index.html", str(result_path),
         screenshot, CAPTION, UNKNOWN, LONG, AGAIN], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  result = json.loads(result_path.read_text())
  assert result["errors"] == [] and result["errorText"] == ""
  example = caption_grammar.encoding()["example"]
  assert result["first"]["caption"] + " ." == example and "type a caption" in result["sourceText"]
  steps, latent_dim = manifest["num_steps"], manifest["latent_dim"]
  h, w, c = manifest["image_shape"]
  shapes = {"images": (h, w, c), "canvases": (steps, h, w, c), "write_windows": (steps, 4)}
  keras_sampler = sampler_lib.KerasSampler(tiny_caption_export.model)
  bound = caption_export.float32_tolerance(keras_sampler.config)
  for run, text in ((result["typed"], CAPTION), (result["again"], AGAIN)):
    assert "error" not in run and run["caption"] == text and run["quantization"] == "float32"
    ids = caption_grammar.encode(text)
    assert run["captions"] == ids.tolist()
    n = run["n"]
    noise = np.asarray(run["noise"], np.float32).reshape(n, steps, latent_dim)
    captions = np.repeat(ids[None], n, axis=0)
    page = sampler_lib.Samples(*(np.asarray(run[k], np.float32).reshape(n, *shapes[k]) for k in contract.OUTPUTS))
    python = _python_litert(os.path.join(caption_page, web_export.WEB_TFLITE_FILES["float32"]), noise, captions)
    keras = keras_sampler.generate(noise, captions=captions)
    for name, a, b, k in zip(contract.OUTPUTS, page, python, keras):
      print(f"{text!r} {name}: max abs diff page vs Python LiteRT {np.max(np.abs(a - b)):.3g}, "
            f"vs Keras {np.max(np.abs(a - k)):.3g} (bound {bound[name]:.3g})")
      assert np.max(np.abs(a - b)) <= bound[name], (text, name, np.max(np.abs(a - b)))
      assert np.max(np.abs(a - k)) <= bound[name], (text, name, np.max(np.abs(a - k)))
  # The messages: one line each, the vocabulary or the limit; nothing drawn meanwhile.
  typed_runs = result["typed"]["runs"]
  assert result["unknown"]["errorText"].startswith("Unknown word 'above' in caption")
  assert " ".join(caption_grammar.WORDS) in result["unknown"]["errorText"]
  assert "the limit is 12" in result["long"]["errorText"] and "16 tokens" in result["long"]["errorText"]
  for message in (result["unknown"], result["long"]):
    assert message["runs"] == typed_runs and message["lastCaption"] == CAPTION and "\n" not in message["errorText"]
  assert result["again"]["runs"] == typed_runs + 1
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
  red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
  assert red.sum() > 50, "no write window boxes in the screenshot"
