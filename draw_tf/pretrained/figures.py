"""The figure a pretrained model is checked by: its bound on a fixed 1,000-image test subset.

``tools/make_pretrained.py`` measures it once and writes it to the manifest
(``subset``); ``tests/test_pretrained.py`` measures it again on the machine
running the tests and compares with :func:`check_subset_bound`. Both call
:func:`subset_bound`, which runs the project's own evaluation
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
"""

from __future__ import annotations

import math

SUBSET_SIZE = 1000
SUBSET_SEED = 0
SUBSET_BATCH_SIZE = 500
UNIT_ROUNDOFF = 2.0 ** -24  # float32
SAFETY = 10.0


def widest_dot_product(model_config) -> int:
  """``n_max``: the longest dot product of one DRAW step (the widest LSTM input plus its state)."""
  h, w, c = (int(d) for d in model_config["image_shape"])
  read = int(model_config["read_size"])
  read_width = 2 * read * read * c if model_config.get("read_attention", True) else 2 * h * w * c
  enc, dec, z = (int(model_config[k]) for k in ("encoder_units", "decoder_units", "latent_dim"))
  return max(read_width + dec + enc, z + dec, dec)


def subset_tolerance(bound: float, model_config, batch_size: int = SUBSET_BATCH_SIZE) -> float:
  """Absolute tolerance (nats) between two machines' subset bounds; see the module docstring."""
  steps = int(model_config["num_steps"])
  relative = SAFETY * (steps * math.sqrt(widest_dot_product(model_config)) + math.sqrt(batch_size)) * UNIT_ROUNDOFF
  return relative * abs(float(bound))


def subset_split(config):
  """The first :data:`SUBSET_SIZE` test images, binarised as ``draw-eval`` reads them.

  ``load_splits`` binarises the whole test split with one seeded generator
  filling the array in order, so these are the same pixels ``draw-eval`` sees.
  """
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  data_config = config.data.copy_and_resolve_references()
  with data_config.unlocked():
    data_config.max_test_examples = 0  # the full split, whatever the run used
  _, test, _ = data.load_splits(data_config)
  if test.num_examples < SUBSET_SIZE:
    raise ValueError(f"the test split has {test.num_examples} images, fewer than the {SUBSET_SIZE} of the subset.")
  return test.head(SUBSET_SIZE)


def subset_bound(model, config, split=None) -> dict:
  """The bound on the fixed subset: :func:`draw_tf.training.evaluation.evaluate_split` in float32, no XLA.

  Args:
    model: a :class:`draw_tf.DrawModel`.
    config: its resolved config (``config.data`` names the test split).
    split: the subset, if already loaded (default :func:`subset_split`).

  Returns:
    ``{"nll_bound", "recon", "kl", "num_examples", "first", "seed", "batch_size",
    "iw_samples", "precision", "jit_compile"}``.
  """
  from draw_tf.training import evaluation as evaluate  # pylint: disable=g-import-not-at-top
  split = subset_split(config) if split is None else split
  result = evaluate.evaluate_split(model, split, iw_samples=1, batch_size=SUBSET_BATCH_SIZE,
                                   seed=SUBSET_SEED, jit_compile=False)
  return {"nll_bound": float(result["nll_bound"]), "recon": float(result["recon"]),
          "kl": float(result["kl"]), "num_examples": int(result["num_examples"]),
          "first": "the first 1,000 images of the test split", "seed": SUBSET_SEED,
          "batch_size": SUBSET_BATCH_SIZE, "iw_samples": 1, "precision": "float32",
          "jit_compile": False}


def check_subset_bound(measured: float, manifest: dict) -> float:
  """Raises AssertionError unless ``measured`` is within :func:`subset_tolerance` of the manifest's.

  Returns:
    The tolerance used (nats).
  """
  want = float(manifest["subset"]["nll_bound"])
  tolerance = subset_tolerance(want, manifest["config"]["model"], manifest["subset"]["batch_size"])
  if not abs(measured - want) <= tolerance:
    raise AssertionError(
        f"subset nll_bound {measured:.6f} differs from the manifest's {want:.6f} (measured at commit "
        f"{manifest['subset'].get('commit')} on {manifest['subset'].get('cpu')}) by "
        f"{abs(measured - want):.3g} > {tolerance:.3g} nats")
  return tolerance
