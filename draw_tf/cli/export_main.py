r"""draw-export: SavedModel + TFLite (float32, float16, int8) of a trained decoder.

    draw-export --workdir=DIR --output_dir=OUT [--web]
    python -m draw_tf.cli.export_main --workdir=DIR --output_dir=OUT

Writes OUT/saved_model/, OUT/draw_decoder{,_fp16,_int8}.tflite and, after every
artifact has reproduced the Keras model on fixed noise, OUT/manifest.json. A
caption model's workdir (alignDRAW, configs/mnist_captions.py) exports its
caption decoder: generate(captions, noise), with the vocabulary and the caption
length limit in the manifest (docs/export.md). On a
failed check it exits with status 1 and OUT is not created (or left as it was).
OUT must be new, empty or a previous export (its manifest.json says so); anything
else (a file, the workdir or a folder above it, a folder of other files) is
refused before anything is written.

With --web it also writes OUT/web/, a page that draws with the decoder in a
browser (export/web_export.py; LiteRT.js from `npm ci`): serve it with
`python -m http.server --directory OUT/web --bind 127.0.0.1`. Without --workdir,
`draw-export --web --output_dir=OUT` writes only OUT/web/, with the int8
decoders of the pretrained models shipped in the package (draw_tf.pretrained; the
page offers each DRAW decoder, opening with mnist_attention when shipped, and its
caption box draws with a shipped caption decoder): no training needed.
"""

import os

from absl import app
from absl import flags
from absl import logging

from draw_tf import progress
from draw_tf.cli import plumbing as cli
from draw_tf.model import sequence_decoder
from draw_tf.errors import UsageError
from draw_tf.export import contract
from draw_tf.export import export_lib
from draw_tf.export import tflite_convert
from draw_tf.export import web_export

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training workdir holding the model to export, or pretrained:NAME. "
    "Without it, --web writes only OUT/web/ with a shipped pretrained decoder.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "New or empty folder, or a previous export (replaced on success).")
_STEPS_PER_ITERATION = flags.DEFINE_integer(
    "steps_per_iteration", sequence_decoder.DEFAULT_STEPS_PER_ITERATION,
    "Decoder steps unrolled per loop iteration in the exported graph.")
_VERIFY_BATCH_SIZE = flags.DEFINE_integer(
    "verify_batch_size", 8, "Noise sequences used by the self-check.")
_VERBOSE = cli.define_verbose_flag()
_WEB = flags.DEFINE_bool(
    "web", False, "Also write OUT/web/: the page drawing with LiteRT.js in a browser.")
_WEB_NODE_MODULES = flags.DEFINE_string(
    "web_node_modules", None,
    "node_modules holding @litertjs/core (default: the repository's, from npm ci).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  progress.set_verbosity(_VERBOSE.value)
  if _WORKDIR.value is None:  # the page alone, with a shipped pretrained decoder
    return _pretrained_page()
  try:
    if _WEB.value:  # before the export, so a missing runtime fails fast
      web_export.runtime_dir(_WEB_NODE_MODULES.value)
    manifest = export_lib.export_workdir(
        _WORKDIR.value, _OUTPUT_DIR.value, steps_per_iteration=_STEPS_PER_ITERATION.value,
        verify_batch_size=_VERIFY_BATCH_SIZE.value)
    if _WEB.value:
      web_dir = os.path.join(_OUTPUT_DIR.value, "web")
      web = web_export.write_web_folder(
          export_lib.load_model(_WORKDIR.value), web_dir, _WEB_NODE_MODULES.value,
          steps_per_iteration=_STEPS_PER_ITERATION.value, verify_batch_size=_VERIFY_BATCH_SIZE.value)
  except (export_lib.ExportVerificationError, UsageError, ValueError, TypeError) as e:
    cli.fail("draw-export", str(e))
  except OSError as e:  # FileNotFoundError, a read-only parent folder, ...
    cli.fail("draw-export", cli.os_error_message(e))
  for name, entry in manifest["files"].items():
    logging.info("%s: %d bytes", name, entry["size_bytes"])
  print(f"Exported to {_OUTPUT_DIR.value}; max abs diff vs Keras: "
        + ", ".join(f"{k} {v:.2g}" for k, v in manifest["verification"]["max_abs_diff"].items()), flush=True)
  out = os.path.abspath(_OUTPUT_DIR.value)
  written = [f"{os.path.join(out, name)}" + ("/" if name == contract.SAVED_MODEL_DIR else "")
             + f" ({entry['size_bytes']:,} bytes)" for name, entry in manifest["files"].items()]
  written.append(f"{os.path.join(out, contract.MANIFEST)} (shapes, signatures, sha256, self-check)")
  caption = manifest.get("caption")  # a caption model's export: draw-sample needs a caption
  next_commands = [f"draw-sample --model={os.path.join(out, tflite_convert.TFLITE_FILES['float32'])} "
                   f"--out={os.path.join(out, 'samples.png')}"
                   + (f" --caption=\"{caption['example']}\"" if caption and caption.get("example") else "")]
  if _WEB.value:
    diffs = {k: max(v.values()) for k, v in web["verification"]["max_abs_diff_per_output"].items()}
    written.append(f"{web_dir}/ (the web page; max abs diff vs Keras: "
                   + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()) + ")")
    next_commands.append(f"python -m http.server --directory {web_dir} --bind 127.0.0.1")
    print(f"Wrote the web page to {web_dir}; serve it with: "
          f"python -m http.server --directory {web_dir} --bind 127.0.0.1", flush=True)
  progress.handoff("draw-export", written, next_commands)


def _pretrained_page():
  """``draw-export --web --output_dir=OUT`` without --workdir: OUT/web/ with the shipped pretrained decoders."""
  if not _WEB.value:
    cli.fail("draw-export", "--workdir is required (a training workdir or pretrained:NAME); without it, "
             "--web writes only the page, with a shipped pretrained decoder.")
  web_dir = os.path.join(_OUTPUT_DIR.value, "web")
  try:
    export_lib.check_output_dir(web_dir)
    web = web_export.write_pretrained_web_folder(None, web_dir, _WEB_NODE_MODULES.value)
  except (UsageError, ValueError) as e:
    cli.fail("draw-export", str(e))
  except OSError as e:
    cli.fail("draw-export", cli.os_error_message(e))
  others = [d["name"] for d in web["decoders"] if d["name"] != web["default_decoder"]]
  progress.handoff("draw-export", [f"{os.path.abspath(web_dir)}/ (the web page with the pretrained decoder "
                                   f"{web['default_decoder']!r}, {web['models'][0]['file']}"
                                   + (f"; it also offers {', '.join(others)}" if others else "") + ")"],
                   [f"python -m http.server --directory {web_dir} --bind 127.0.0.1"])


def run():
  """Console-script entry point."""
  flags.mark_flags_as_required(["output_dir"])
  cli.run(main, "draw-export")


if __name__ == "__main__":
  run()
