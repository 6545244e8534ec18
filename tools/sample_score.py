r"""Sample score: how many of a DRAW's prior samples an independent classifier reads with confidence.

    python tools/sample_score.py --model=WORKDIR [--num=1000] [--seed=0]
    python tools/sample_score.py --model=pretrained:NAME [--num=1000] [--seed=0]

The judge is a convolutional classifier trained by this tool on real training
digits, never on samples nor on test images (:data:`JUDGES`):

* MNIST (28 x 28; ``mnist``, ``binarized_mnist``): the 10 digits; a small CNN
  (``tools/judges.py``), 2 epochs over MNIST's training split.
* two-digit MNIST (60 x 60, ``multi_mnist``): the unordered pair of digits,
  55 classes (10 same-digit pairs and 45 distinct pairs, :func:`pair_class`);
  a CNN with batch norm and a digit-count head (``tools/pair_judge.py``),
  trained on pairs composed afresh each epoch from MNIST's training digits by
  the dataset's own rule.

Each is trained once (seeded) on grey and Bernoulli-binarised images alike and
cached outside the repository, atomically, in
``CACHE/judges/DATASET-vVERSION-SHA.keras`` (``CACHE`` is ``config.data.cache_dir``,
``$DRAW_TF_DATA_DIR`` or ``~/.cache/draw_tf``, where the offline MNIST lives;
``VERSION`` is the dataset's judge's; ``SHA`` that of MNIST's training digits
and labels), beside a ``.json`` with its test accuracy. Later runs load it from there.

The score is the fraction of ``--num`` prior samples (``DrawModel.generate``'s
stream, :func:`draw_tf.seeds.prior_normal` with ``--seed``: the same command
gives the same score) that the judge assigns to one class with probability
>= 0.9. Beside it, the ceiling: the same fraction over as many real test
images, binarised as the model's ``config.data`` says (as ``draw-eval`` sees
them), with the fraction of them confidently *wrong* (a confident judge is not
always a right one) and the judge's test accuracy. A readable table goes to stderr, one
JSON line to stdout (``tools/benchmark.py``'s convention).

``--judge_steps``, ``--judge_train_examples`` and ``--judge_test_examples``
make a small judge for the tests (it is cached under its own name).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Callable, NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)  # configs/ and tools/ when run as a script

from absl import app, flags, logging  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
from draw_tf.errors import UsageError  # noqa: E402
from tools import pair_judge  # noqa: E402
# The judges' machinery and the pair classes, used through this module by tools/caption_judge.py and the tests.
from tools.judges import (JUDGE_BATCH, accuracy, binarised_batches, build_judge, cached_judge,  # noqa: E402,F401
                          judge_cache_path, judge_dataset, predict, shuffled_examples)
from tools.pair_judge import NUM_PAIRS, PAIR_TABLE, pair_class, pair_of  # noqa: E402,F401

PRETRAINED_PREFIX = "pretrained:"
# Datasets of DRAW models and the judge that reads their samples.
JUDGED = {"mnist": "mnist", "binarized_mnist": "mnist", "multi_mnist": "multi_mnist"}


# ----------------------------------------------------------------------------
# Classes and the score


def confident_fraction(probs, threshold: float = 0.9) -> float:
  """The fraction of rows of ``probs`` ``[N, classes]`` whose largest probability is >= ``threshold``."""
  probs = np.asarray(probs)
  if probs.ndim != 2 or not len(probs):
    raise ValueError(f"probs must be [N >= 1, classes], got shape {probs.shape}.")
  return float(np.mean(probs.max(axis=1) >= threshold))


def class_counts(probs, threshold: float = 0.9) -> list:
  """How many rows are assigned with confidence to each class (a collapse to few classes shows here)."""
  probs = np.asarray(probs)
  confident = probs.max(axis=1) >= threshold
  return np.bincount(probs.argmax(axis=1)[confident], minlength=probs.shape[1]).tolist()


# ----------------------------------------------------------------------------
# The model scored


class ScoredModel(NamedTuple):
  """A DRAW to score and the data config it was trained with."""
  model: object  # draw_tf.DrawModel
  data_config: ml_collections.ConfigDict
  description: str
  checkpoint: str = ""  # the workdir's checkpoint scored, or pretrained:NAME


def load_pretrained(name: str):
  """``(model, config)`` of a pretrained model (:mod:`draw_tf.pretrained`): the one place ``pretrained:`` is resolved."""
  from draw_tf import pretrained  # pylint: disable=g-import-not-at-top
  return pretrained.load(name, compile=False), pretrained.config(name)


def load_scored_model(spec: str) -> ScoredModel:
  """The DRAW named by ``--model``: a training workdir or ``pretrained:NAME``."""
  from configs import default  # pylint: disable=g-import-not-at-top
  from draw_tf.runs import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  if spec.startswith(PRETRAINED_PREFIX):
    model, config = load_pretrained(spec[len(PRETRAINED_PREFIX):])
    checkpoint = spec
  else:
    config = workdir_lib.load_config(spec)
    if workdir_lib.is_classifier(config):
      raise UsageError(f"--model={spec} holds a classifier; the sample score judges a DRAW's samples.")
    checkpoint = workdir_lib.latest_checkpoint(spec)
    model = workdir_lib.load_model_from_workdir(spec, checkpoint)
  data_config = default.get_config().data
  data_config.update(config.data.to_dict())  # older workdirs lack newer fields
  if data_config.name not in JUDGED:
    raise UsageError(f"--model={spec} was trained on {data_config.name!r}; the sample score has judges "
                     f"for {', '.join(JUDGED)} only.")
  return ScoredModel(model, data_config, spec, checkpoint)


def prior_samples(model, num: int, seed: int, chunk: int = 250) -> np.ndarray:
  """``float32 [num, H, W, C]``: ``model.generate(num, seed=seed)``'s images, drawn ``chunk`` at a time."""
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  noise = seeds.prior_normal([num, model.num_steps, model.latent_dim], seed).numpy()
  return np.concatenate([model.generate(noise=noise[i:i + chunk]).images for i in range(0, num, chunk)])


# ----------------------------------------------------------------------------
# The judge


def judge_splits(judged: str, data_config):
  """The judge's training and test Splits of grey images, and the sha256 of its training data.

  Returns:
    ``(train, test, sha)``: ``train`` is MNIST's whole training split, for both
    judges (the two-digit judge composes its pairs from these digits, never from
    test digits); ``test`` is ``judged``'s test split with the judge's classes as labels.
  """
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  config = data_config.copy_and_resolve_references()
  config.update(name="mnist", binarization="none", max_train_examples=0, max_test_examples=0,
                validation_examples=0, train_split="", fresh_each_epoch=False)
  if judged == "mnist" and config.source == "tfds":
    config.source = "auto"
  train, test, _ = data.load_splits(config)
  if judged == "multi_mnist":  # built from MNIST read from the same source
    config.name = "multi_mnist"
    _, test, _ = data.load_splits(config)
    test = test._replace(labels=pair_class(test.labels))
  sha = hashlib.sha256()
  for array in (train.images, train.labels):
    sha.update(np.ascontiguousarray(array).tobytes())
  return train, test, sha.hexdigest()


def constant_rate(steps: int):
  """Adam's learning rate 1e-3 throughout (``steps`` unused)."""
  del steps
  return 1e-3


def cosine_rate(steps: int):
  """Adam's learning rate 2e-3 decaying over ``steps`` by a cosine to 5 % of it."""
  import keras  # pylint: disable=g-import-not-at-top
  return keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.05)


class JudgeRecipe(NamedTuple):
  """How one dataset's judge is built and trained. Change any of it, bump ``version``."""
  version: int  # in the cache's name: a judge cached under another version is not used
  epochs: int  # the standard judge's training: passes over MNIST's training digits
  build: Callable  # image_shape -> a Keras model giving class probabilities
  examples: Callable  # (MNIST training Split, seed) -> endless tf.data of (uint8 image, class)
  learning_rate: Callable  # steps -> Adam's learning rate or schedule


JUDGES = {
    # 936 steps; the cached v1 reads 99.00 % of the test digits.
    "mnist": JudgeRecipe(1, 2, lambda shape: build_judge(shape, 10), shuffled_examples, constant_rate),
    # v1 (build_judge, 4 epochs of the cached training pairs, constant rate) read 80.85 %.
    "multi_mnist": JudgeRecipe(2, 8, pair_judge.build_pair_judge, pair_judge.pair_examples, cosine_rate),
}


def load_or_train_judge(judged: str, data_config, steps: int = 0, train_examples: int = 0,
                        test_examples: int = 0):
  """The cached judge of ``judged``, trained (and cached, atomically) first if there is none.

  Args:
    judged: a key of :data:`JUDGES`.
    data_config: the scored model's ``config.data`` (source, seed, cache folder).
    steps: training steps (0: the recipe's epochs over MNIST's training digits).
    train_examples: train on the first N training digits only (0: all). For tests.
    test_examples: measure the accuracy on the first N test images only (0: all). For tests.

  Returns:
    ``(judge, info)``: a Keras model giving class probabilities, and the cache's
    metadata (``test_accuracy``, ``steps``, ``path``, ``trained_now``, ...).
  """
  recipe = JUDGES[judged]
  train, test, sha = judge_splits(judged, data_config)
  if train_examples:
    train = train.head(train_examples)
  if test_examples:
    test = test.head(test_examples)
  epochs_steps = recipe.epochs * (train.num_examples // JUDGE_BATCH)
  steps = steps or epochs_steps
  small = "" if (steps, train_examples, test_examples) == (epochs_steps, 0, 0) else (
      f"-small{steps}x{train_examples}x{test_examples}")
  path = judge_cache_path(data_config, f"{judged}-v{recipe.version}-{sha[:16]}{small}")

  def train_judge():
    import keras  # pylint: disable=g-import-not-at-top
    from draw_tf import seeds  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(seeds.numpy_seed(0, seeds.SAMPLE_SCORE_JUDGE))
    judge = recipe.build(test.images.shape[1:])
    judge.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate(steps)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    logging.info("Training the %s judge: %d steps of %d images from %d digits (cached in %s)", judged, steps,
                 JUDGE_BATCH, train.num_examples, path)
    start, cpu_start = time.time(), time.process_time()
    batches = binarised_batches(recipe.examples(train, 0), train.max_value, min(JUDGE_BATCH, train.num_examples))
    judge.fit(batches, steps_per_epoch=steps, epochs=1, verbose=2 if steps >= 100 else 0)
    seconds, cpu_seconds = time.time() - start, time.process_time() - cpu_start  # all threads' CPU time
    return judge, {"dataset": judged, "version": recipe.version, "data_sha256": sha, "steps": steps,
                   "batch_size": JUDGE_BATCH, "train_examples": train.num_examples,
                   "test_examples": test.num_examples, "test_accuracy": accuracy(judge, test),
                   "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu_seconds, 1)}

  return cached_judge(path, train_judge)


# ----------------------------------------------------------------------------
# The score


def ceiling_images(data_config, num: int):
  """The first ``num`` real test images as the model's ``config.data`` gives them (binarised or grey).

  Returns:
    ``(images, classes)``: float32 ``[num, H, W, C]`` in [0, 1] and the judge's
    classes ``int64 [num]`` (digit pairs for ``multi_mnist``), None where the data has no labels.
  """
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  config = data_config.copy_and_resolve_references()
  config.update(max_train_examples=0, max_test_examples=0)
  _, test, _ = data.load_splits(config)
  test = test.head(num)
  classes = test.labels
  if classes is not None and JUDGED[data_config.name] == "multi_mnist":
    classes = pair_class(classes)
  return test.images.astype(np.float32) / test.max_value, classes


def confident_and_wrong(probs, classes, threshold: float = 0.9):
  """The fraction of rows assigned with confidence to a class other than ``classes``' (None without them)."""
  if classes is None:
    return None
  probs = np.asarray(probs)
  return float(np.mean((probs.max(axis=1) >= threshold) & (probs.argmax(axis=1) != np.asarray(classes))))


def sample_score(scored: ScoredModel, num: int = 1000, seed: int = 0, threshold: float = 0.9,
                 judge_steps: int = 0, judge_train_examples: int = 0, judge_test_examples: int = 0) -> dict:
  """The score of ``scored``'s prior samples, the ceiling of real test images, the judge's accuracy."""
  judged = JUDGED[scored.data_config.name]
  judge, info = load_or_train_judge(judged, scored.data_config, judge_steps, judge_train_examples,
                                    judge_test_examples)
  start = time.time()
  samples = prior_samples(scored.model, num, seed)
  sample_probs = predict(judge, samples)
  real, real_classes = ceiling_images(scored.data_config, num)
  real_probs = predict(judge, real)
  labels_note = "unordered digit pairs (55 classes)" if judged == "multi_mnist" else "digits (10 classes)"
  return {
      "model": scored.description, "checkpoint": scored.checkpoint, "dataset": scored.data_config.name,
      "judge": judged,
      "classes": labels_note, "num": num, "seed": seed, "threshold": threshold,
      "score": confident_fraction(sample_probs, threshold),
      "ceiling": confident_fraction(real_probs, threshold), "ceiling_num": len(real),
      "ceiling_binarization": scored.data_config.binarization,
      "ceiling_confident_wrong": confident_and_wrong(real_probs, real_classes, threshold),
      "ceiling_accuracy": None if real_classes is None else float(np.mean(real_probs.argmax(axis=1) == real_classes)),
      "judge_test_accuracy": info["test_accuracy"], "judge_test_examples": info["test_examples"],
      "judge_steps": info["steps"], "judge_cache": info["path"], "judge_trained_now": info["trained_now"],
      "judge_version": info["version"], "sample_class_counts": class_counts(sample_probs, threshold),
      "ceiling_class_counts": class_counts(real_probs, threshold),
      "score_seconds": round(time.time() - start, 1),
  }


def _wrong_note(result: dict) -> str:
  """``; 1.2 % confident and wrong, accuracy 97.0 %`` where the real images have labels."""
  if result["ceiling_confident_wrong"] is None:
    return ""
  return f"; {result['ceiling_confident_wrong']:.1%} confident and wrong, accuracy {result['ceiling_accuracy']:.1%}"


def table(result: dict) -> str:
  """The result as a few readable lines."""
  t = result["threshold"]
  return "\n".join([
      f"Sample score of {result['model']} {os.path.basename(result['checkpoint'])} ({result['dataset']}; "
      f"judge: {result['classes']})",
      f"  {'prior samples':20} {result['score']:7.1%}  of {result['num']} (seed {result['seed']}) "
      f"assigned to one class with p >= {t}",
      f"  {'real test (ceiling)':20} {result['ceiling']:7.1%}  of {result['ceiling_num']} "
      f"(binarization {result['ceiling_binarization']}){_wrong_note(result)}",
      f"  {'judge test accuracy':20} {result['judge_test_accuracy']:7.2%}  on {result['judge_test_examples']} grey "
      f"test images ({result['judge_steps']} steps; {result['judge_cache']})",
      f"  confident samples per class {result['sample_class_counts']}",
  ])


def define_flags() -> None:
  """The command's flags (defined when run, so tests can import this file beside draw-sample's)."""
  flags.DEFINE_string("model", None, "A training workdir, or pretrained:NAME.")
  flags.DEFINE_integer("num", 1000, "Prior samples scored (and real test images for the ceiling).",
                       lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the prior noise (draw_tf.seeds.prior_normal).")
  flags.DEFINE_float("threshold", 0.9, "A sample counts when the judge gives one class at least this.")
  flags.DEFINE_integer("judge_steps", 0, "Judge training steps (0: the standard judge). For tests.")
  flags.DEFINE_integer("judge_train_examples", 0, "Train the judge on the first N images only (0: all). For tests.")
  flags.DEFINE_integer("judge_test_examples", 0, "Measure the judge's accuracy on the first N test images "
                       "only (0: all). For tests.")
  flags.mark_flags_as_required(["model"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  with cli.user_errors("sample_score"):
    scored = load_scored_model(f.model)
    result = sample_score(scored, f.num, f.seed, f.threshold, f.judge_steps, f.judge_train_examples,
                          f.judge_test_examples)
  print(table(result), file=sys.stderr, flush=True)
  print(json.dumps(result))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  define_flags()
  cli.prepare(sys.argv)
  app.run(main)
