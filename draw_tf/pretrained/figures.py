"""The figure a pretrained model is checked by, on a fixed 1,000-image test subset.

``tools/make_pretrained.py`` measures it once and writes it to the manifest
(``subset``); ``tests/test_pretrained.py`` measures it again on the machine
running the tests and compares (:func:`measure` and :func:`check`, which pick
the figure of the model's kind):

* a DRAW or a caption model (alignDRAW): its bound, :func:`subset_bound`;
* a classifier: its error and which images it gets wrong, :func:`subset_error`
  (the rule that compares them is below, "The classifier").

The subset is the first :data:`SUBSET_SIZE` images of the test split as
``draw-eval`` reads them (:func:`subset_split`; a caption model's are
``(image, caption)`` pairs, each bound being ``-log p(x | y)``).
:func:`subset_bound` runs the project's own evaluation
(:func:`draw_tf.training.evaluation.evaluate_split`, the function and the noise stream
``seeds.EVAL_NOISE`` of ``draw-eval``) on the first :data:`SUBSET_SIZE`
images of the test split as ``draw-eval`` reads it (same binarisation), in
float32 without XLA, with seed :data:`SUBSET_SEED` and
:data:`SUBSET_BATCH_SIZE` images per batch (the noise of a batch depends on
its index and size, so both are fixed).

How close two machines must agree (:func:`subset_tolerance`), derived from the
arithmetic rather than from one machine's result: the weights and the noise are
the same, so only the rounding of float32 operations differs between CPUs (the
order in which oneDNN / Eigen / XNNPACK kernels sum a dot product, FMA or not,
vectorised ``exp``/``log``/``tanh`` within a few ulp). With unit roundoff
``u = 2**-24``:

* a dot product of length ``n`` summed in another order differs by about
  ``sqrt(n) u`` relative (rounding errors of random sign; ``n u`` is the
  worst case, never approached by sums of mixed-sign terms);
* DRAW runs ``T`` steps, each a few such products of length at most
  ``n_max`` (the widest LSTM input: read glimpse + the other LSTM's state +
  its own state, or ``z`` + the decoder state), and a trained recurrence does
  not expand perturbations on average, so the canvas, the KL terms and hence
  the per-image bound ``L`` differ by at most about ``T sqrt(n_max) u``
  relative;
* a batch's ``sum`` of ``B`` per-image bounds (float32 ``reduce_sum``) adds
  about ``sqrt(B) u`` relative; batches are added in float64 and divided by
  the count, which adds nothing at this scale;
* elementwise functions (sigmoid, softplus, ``exp``, ``log``) of different
  libraries differ by up to a few ulp each: a factor, not a new term.

So ``|delta L| / L <= c (T sqrt(n_max) + sqrt(B)) u`` with a safety factor
``c`` = :data:`SAFETY` for the few-ulp functions and the non-random part of
the sums. For the paper's MNIST model (T = 64, 256-unit LSTMs, read 2 x 2,
z = 100; ``n_max`` = 520, B = 500) that is about ``8.8e-4`` relative, 0.075 nats
at 85 nats: far below what a different model or a different test split would
change (nats), far above what two CPUs running the same weights differ by.

A caption model adds the caption LSTM's ``L`` steps (``caption.max_caption_length``)
before the ``T`` (the steps become ``T + L``) and its own dot products to ``n_max``
(the decoder's ``[z_t, s_t, h]`` with ``s_t`` of ``2 caption_units``, the align
layer's, the caption LSTM's): for configs/mnist_captions.py (T = 32, L = 12,
``n_max`` = 728) 7.2e-4 relative, 0.072 nats at 100 nats.

**The classifier.** Its figure is a count (misclassified images), so the
question is which images may flip between two machines. The logits are
``W h_G + b``; ``h_G`` (in [-1, 1]) is the end of ``G`` glimpse steps, each an
LSTM update of dot products of length at most ``n_max`` (the glimpse's
``N^2 C`` plus the state's units, or an image side of the read's ``Fy x Fx^T``)
and a read whose window is the linear output of the state scaled to pixels by
about the image side ``S = max(H, W)`` (centre ``(A + 1) / 2 gx~``, stride
``(A - 1) / (N - 1) delta~``): a filter moved by one pixel changes a glimpse
(a weighted mean of pixels in [0, 1]) by at most about one grey level. So the
state differs by at most about ``eps_h = G S sqrt(n_max) u`` between machines, and
logit ``k`` by ``(eps_h + sqrt(units) u) ||W_k||_1`` (the error of ``h_G`` through
the head, plus the head's own rounding), times :data:`SAFETY`. The predicted
class can change only where the two largest logits are closer than twice that
(:func:`flip_margin`; both may move towards each other). So the check
(:func:`check_subset_error`) is: every image whose correctness differs from the
manifest's must have a top-two margin below :func:`flip_margin` here. (An image
that flipped has such a margin on both machines: on each, the logit of the class
the other machine chose is within twice the bound of its top one.) For the
paper's classifier (G = 8, S = 100, n_max = 400, 256 units) the margin is
``1.9e-2 max_k ||W_k||_1``: a few tenths of a logit for a head whose rows sum to
tens. The bound is deliberately loose (a step edge under every filter, every
rounding in the same direction through ``G`` steps): a model that was changed
misclassifies other images whose margins are far wider, and fails.
"""

from __future__ import annotations

import math

import numpy as np

SUBSET_SIZE = 1000
SUBSET_SEED = 0
SUBSET_BATCH_SIZE = 500
UNIT_ROUNDOFF = 2.0 ** -24  # float32
SAFETY = 10.0
SUBSET_DESCRIPTION = "the first 1,000 images of the test split"


def _task(config) -> str:
  from draw_tf.model import registry  # pylint: disable=g-import-not-at-top
  return registry.task_of(config)


def widest_dot_product(model_config, caption_config=None) -> int:
  """``n_max``: the longest dot product of one DRAW step (the widest LSTM input plus its state).

  ``caption_config``: a caption model's ``config.caption`` (its decoder also takes ``s_t``).
  """
  h, w, c = (int(d) for d in model_config["image_shape"])
  read = int(model_config["read_size"])
  read_width = 2 * read * read * c if model_config.get("read_attention", True) else 2 * h * w * c
  enc, dec, z = (int(model_config[k]) for k in ("encoder_units", "decoder_units", "latent_dim"))
  widest = max(read_width + dec + enc, z + dec, dec)
  if caption_config:
    context = 2 * int(caption_config["caption_units"])  # s_t: both directions of the caption LSTM
    widest = max(widest, z + context + dec, int(caption_config["align_units"]),
                 int(caption_config["word_dim"]) + int(caption_config["caption_units"]))
  return widest


def subset_tolerance(bound: float, model_config, batch_size: int = SUBSET_BATCH_SIZE,
                     caption_config=None) -> float:
  """Absolute tolerance (nats) between two machines' subset bounds; see the module docstring."""
  steps = int(model_config["num_steps"])
  if caption_config:
    steps += int(caption_config["max_caption_length"])
  width = widest_dot_product(model_config, caption_config)
  relative = SAFETY * (steps * math.sqrt(width) + math.sqrt(batch_size)) * UNIT_ROUNDOFF
  return relative * abs(float(bound))


def subset_split(config):
  """The first :data:`SUBSET_SIZE` test examples, as ``draw-eval --split=test`` reads them.

  The task's own test split (:meth:`draw_tf.training.tasks.Task.eval_split`) read whole
  (``data.max_test_examples = 0``, whatever the run used), then cut: each split is
  binarised whole with one seeded generator filling the array in order, so these are
  the pixels ``draw-eval`` sees.
  """
  test = full_test_split(config)
  if test.num_examples < SUBSET_SIZE:
    raise ValueError(f"the test split has {test.num_examples} images, fewer than the {SUBSET_SIZE} of the subset.")
  return test.head(SUBSET_SIZE)


def whole_splits(config):
  """A copy of ``config`` that reads whole evaluation splits (``data.max_test_examples = 0``, whatever the run used)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.max_test_examples = 0
  return config


def full_test_split(config):
  """The whole test split of ``config``'s task, as ``draw-eval --split=test`` reads it."""
  from draw_tf.training import tasks  # pylint: disable=g-import-not-at-top
  config = whole_splits(config)
  split, _ = tasks.get(config).eval_split(config, "test")
  return split


def _settings() -> dict:
  return {"num_examples": SUBSET_SIZE, "first": SUBSET_DESCRIPTION, "seed": SUBSET_SEED,
          "batch_size": SUBSET_BATCH_SIZE, "precision": "float32", "jit_compile": False}


def subset_bound(model, config, split=None) -> dict:
  """The bound on the fixed subset: ``draw-eval``'s evaluation in float32, no XLA.

  Args:
    model: a :class:`draw_tf.DrawModel` (or :class:`draw_tf.AlignDrawModel`: ``-log p(x | y)``).
    config: its resolved config (``config.data`` names the test split).
    split: the subset, if already loaded (default :func:`subset_split`).

  Returns:
    ``{"nll_bound", "recon", "kl", "num_examples", "first", "seed", "batch_size",
    "iw_samples", "precision", "jit_compile"}``.
  """
  from draw_tf.training import captioning  # pylint: disable=g-import-not-at-top
  from draw_tf.training import evaluation as evaluate  # pylint: disable=g-import-not-at-top
  split = subset_split(config) if split is None else split
  if _task(config) == "caption":
    result = captioning.evaluate(model, split, 1, SUBSET_BATCH_SIZE, SUBSET_SEED, jit_compile=False)
  else:
    result = evaluate.evaluate_split(model, split, iw_samples=1, batch_size=SUBSET_BATCH_SIZE,
                                     seed=SUBSET_SEED, jit_compile=False)
  return {"nll_bound": float(result["nll_bound"]), "recon": float(result["recon"]),
          "kl": float(result["kl"]), **_settings(), "num_examples": int(result["num_examples"]),
          "iw_samples": 1}


def flip_margin(model) -> float:
  """The top-two logit margin below which a :class:`draw_tf.DrawClassifier`'s prediction may differ
  between two machines (see the module docstring): ``2 SAFETY (G S sqrt(n_max) + sqrt(units)) u max_k ||W_k||_1``."""
  h, w, c = model.image_shape
  width = max(model.glimpse_size ** 2 * c + model.units, h, w)
  per_unit = model.num_glimpses * max(h, w) * math.sqrt(width) + math.sqrt(model.units)
  head = np.abs(np.asarray(model.head.kernel.numpy(), np.float64)).sum(axis=0)  # ||W_k||_1, [classes]
  return float(2.0 * SAFETY * per_unit * UNIT_ROUNDOFF * head.max())


def subset_error(model, config, split=None) -> dict:
  """A classifier's figures on the fixed subset: ``draw-eval``'s error, and which images are wrong.

  Returns:
    ``{"error_percent", "num_misclassified", "misclassified" (indices into the subset),
    "loss", "flip_margin" (:func:`flip_margin`), "fragile" (indices whose top-two logit
    margin is below it here), "num_examples", "first", "seed", "batch_size", "precision",
    "jit_compile"}``.
  """
  from draw_tf.training import evaluation as evaluate  # pylint: disable=g-import-not-at-top
  split = subset_split(config) if split is None else split
  result = evaluate.classification_error(model, split, SUBSET_BATCH_SIZE, return_logits=True)
  logits = result["logits"]
  wrong = np.flatnonzero(logits.argmax(-1) != np.asarray(split.labels))
  top_two = np.sort(logits, axis=-1)[:, -2:]
  margin = flip_margin(model)
  fragile = np.flatnonzero(top_two[:, 1] - top_two[:, 0] <= margin)
  return {"error_percent": 100.0 * len(wrong) / len(logits), "num_misclassified": int(len(wrong)),
          "misclassified": [int(i) for i in wrong], "loss": float(result["loss"]), "flip_margin": margin,
          "fragile": [int(i) for i in fragile], **_settings(), "num_examples": int(len(logits))}


def measure(model, config, split=None) -> dict:
  """The subset figures of the model's kind: :func:`subset_error` for a classifier, else :func:`subset_bound`."""
  if _task(config) == "classify":
    return subset_error(model, config, split)
  return subset_bound(model, config, split)


def check(measured: dict, manifest: dict) -> str:
  """:func:`check_subset_error` or :func:`check_subset_bound` by the manifest's task; what was compared."""
  if _task(manifest["config"]) == "classify":
    return check_subset_error(measured, manifest)
  tolerance = check_subset_bound(measured["nll_bound"], manifest)
  return (f"subset bound {measured['nll_bound']:.6f}, manifest {manifest['subset']['nll_bound']:.6f}, "
          f"tolerance {tolerance:.3g} nats")


def check_subset_bound(measured: float, manifest: dict) -> float:
  """Raises AssertionError unless ``measured`` is within :func:`subset_tolerance` of the manifest's.

  Returns:
    The tolerance used (nats).
  """
  want = float(manifest["subset"]["nll_bound"])
  config = manifest["config"]
  caption = config.get("caption") if _task(config) == "caption" else None
  tolerance = subset_tolerance(want, config["model"], manifest["subset"]["batch_size"], caption)
  if not abs(measured - want) <= tolerance:
    raise AssertionError(
        f"subset nll_bound {measured:.6f} differs from the manifest's {want:.6f} (measured at commit "
        f"{manifest['subset'].get('commit')} on {manifest['subset'].get('cpu')}) by "
        f"{abs(measured - want):.3g} > {tolerance:.3g} nats")
  return tolerance


def check_subset_error(measured: dict, manifest: dict) -> str:
  """Raises AssertionError unless every image wrong here but not in the manifest (or the other way)
  has a top-two margin below the flip margin here (``measured["fragile"]``); see the module docstring.

  Returns:
    What was compared (one line).
  """
  want = manifest["subset"]
  flipped = set(want["misclassified"]) ^ set(measured["misclassified"])
  unexplained = sorted(flipped - set(measured["fragile"]))
  if unexplained:
    raise AssertionError(
        f"subset images {unexplained[:10]} are classified differently here and in the manifest (measured at "
        f"commit {want.get('commit')} on {want.get('cpu')}), though "
        f"their top-two logit margins exceed the flip margin {measured['flip_margin']:.3g}: "
        f"{measured['num_misclassified']} misclassified here, {want['num_misclassified']} in the manifest")
  return (f"subset error {measured['error_percent']:.2f}% ({measured['num_misclassified']} images), manifest "
          f"{want['error_percent']:.2f}% ({want['num_misclassified']}); {len(flipped)} differ, "
          f"{len(measured['fragile'])} within the flip margin {measured['flip_margin']:.3g}")
