r"""Sample score: how many of a DRAW's prior samples an independent classifier reads with confidence.

    python tools/sample_score.py --model=WORKDIR [--num=1000] [--seed=0]
    python tools/sample_score.py --model=pretrained:NAME [--num=1000] [--seed=0]

The judge is a small convolutional classifier trained by this tool on the real
training images of the model's dataset, never on samples:

* MNIST (28 x 28; ``mnist``, ``binarized_mnist``): the 10 digits.
* two-digit MNIST (60 x 60, ``multi_mnist``): the unordered pair of digits,
  55 classes (10 same-digit pairs and 45 distinct pairs, :func:`pair_class`).

It is trained once (seeded) on grey and Bernoulli-binarised images alike and
cached outside the repository, atomically, in
``CACHE/judges/DATASET-vVERSION-SHA.keras`` (``CACHE`` is ``config.data.cache_dir``,
``$DRAW_TF_DATA_DIR`` or ``~/.cache/draw_tf``, where the offline MNIST lives;
``SHA`` is that of its training images and labels), beside a ``.json`` with its
test accuracy. Later runs load it from there.

The score is the fraction of ``--num`` prior samples (``DrawModel.generate``'s
stream, :func:`draw_tf.seeds.prior_normal` with ``--seed``: the same command
gives the same score) that the judge assigns to one class with probability
>= 0.9. Beside it, the ceiling: the same fraction over as many real test
images, binarised as the model's ``config.data`` says (as ``draw-eval`` sees
them), and the judge's test accuracy. A readable table goes to stderr, one
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
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
from draw_tf.errors import UsageError  # noqa: E402

PRETRAINED_PREFIX = "pretrained:"
# Bump when the judge's architecture, training or data change: older cached judges are then not used.
JUDGE_VERSION = 1
# The standard judge's training: epochs over the training split, batch size.
JUDGE_EPOCHS = {"mnist": 2, "multi_mnist": 4}
JUDGE_BATCH = 128
# Datasets of DRAW models and the judge that reads their samples.
JUDGED = {"mnist": "mnist", "binarized_mnist": "mnist", "multi_mnist": "multi_mnist"}


# ----------------------------------------------------------------------------
# Classes and the score


def _pair_table() -> np.ndarray:
  """``int [10, 10]``: the class of the unordered pair ``(a, b)``, symmetric."""
  table = np.zeros((10, 10), np.int64)
  pairs = [(a, b) for a in range(10) for b in range(a, 10)]  # (0,0), (0,1), ... (9,9): 55
  for k, (a, b) in enumerate(pairs):
    table[a, b] = table[b, a] = k
  return table


PAIR_TABLE = _pair_table()
NUM_PAIRS = 55  # 10 same-digit pairs + 45 distinct pairs


def pair_class(labels) -> np.ndarray:
  """The class in 0..54 of each unordered pair of digits.

  Args:
    labels: int ``[..., 2]`` digit labels (``multi_mnist``'s).

  Returns:
    int64 ``[...]``: ``(a, b)`` and ``(b, a)`` share a class; distinct pairs distinct classes.
  """
  labels = np.asarray(labels)
  return PAIR_TABLE[labels[..., 0], labels[..., 1]]


def pair_of(cls: int) -> tuple:
  """The pair ``(a, b)``, ``a <= b``, of a class of :func:`pair_class`."""
  a, b = np.argwhere(PAIR_TABLE == cls)[0]
  return int(a), int(b)


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
  """The judge's ``(train, test)`` Splits of grey images with class labels, and its data sha256."""
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  config = data_config.copy_and_resolve_references()
  config.update(name=judged, binarization="none", max_train_examples=0, max_test_examples=0,
                validation_examples=0, train_split="", fresh_each_epoch=False)
  if judged == "mnist" and config.source == "tfds":
    config.source = "auto"
  train, test, _ = data.load_splits(config)
  if judged == "multi_mnist":
    train, test = (s._replace(labels=pair_class(s.labels)) for s in (train, test))
  sha = hashlib.sha256()
  for array in (train.images, train.labels):
    sha.update(np.ascontiguousarray(array).tobytes())
  return train, test, sha.hexdigest()


def build_judge(image_shape, num_classes: int):
  """A small CNN: three conv-ReLU-pool blocks (a stride-2 stem on large images), dense 256, softmax."""
  import keras  # pylint: disable=g-import-not-at-top
  stem_stride = 2 if image_shape[0] >= 56 else 1
  layers = [keras.Input(image_shape),
            keras.layers.Conv2D(32, 5 if stem_stride == 2 else 3, strides=stem_stride, padding="same",
                                activation="relu"),
            keras.layers.MaxPooling2D()]
  for filters in (64, 128):
    layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D()]
  layers += [keras.layers.Flatten(), keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.3),
             keras.layers.Dense(num_classes, activation="softmax")]
  return keras.Sequential(layers, name="sample_judge")


def judge_dataset(split, batch_size: int, seed: int = 0):
  """Shuffled training batches, each image grey or Bernoulli-binarised (half each), seeded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels)).repeat()
  ds = ds.shuffle(10_000, seed=seeds.numpy_seed(seed, seeds.SAMPLE_SCORE_JUDGE))
  ds = ds.batch(batch_size, drop_remainder=True).enumerate()

  @tf.autograph.experimental.do_not_convert  # no Python control flow; and its closure holds modules
  def prepare(step, batch):
    images, labels = batch
    grey = tf.cast(images, tf.float32) / split.max_value
    noise = tf.random.stateless_uniform(tf.shape(grey), seeds.stateless(seed, seeds.SAMPLE_SCORE_JUDGE, 2 * step))
    binarise = tf.random.stateless_uniform([tf.shape(grey)[0], 1, 1, 1],
                                           seeds.stateless(seed, seeds.SAMPLE_SCORE_JUDGE, 2 * step + 1)) < 0.5
    return tf.where(binarise, tf.cast(noise < grey, tf.float32), grey), labels

  return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def predict(judge, images, batch_size: int = 500) -> np.ndarray:
  """The judge's class probabilities ``[N, classes]`` of float images in [0, 1]."""
  return np.asarray(judge.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0))


def accuracy(judge, split) -> float:
  """The judge's accuracy on a Split's grey images."""
  probs = predict(judge, split.images.astype(np.float32) / split.max_value)
  return float(np.mean(probs.argmax(axis=1) == split.labels))


def judge_cache_path(data_config, name: str) -> str:
  """``CACHE/judges/NAME.keras``, ``CACHE`` being ``config.data.cache_dir`` or :func:`draw_tf.data.default_cache_dir`."""
  from draw_tf.data import default_cache_dir  # pylint: disable=g-import-not-at-top
  return os.path.join(data_config.cache_dir or default_cache_dir(), "judges", f"{name}.keras")


def cached_judge(path: str, train):
  """The judge cached at ``path`` (a ``.keras`` with its ``.json`` metadata), or ``train()``'s, cached first.

  Args:
    path: from :func:`judge_cache_path`; name it by everything the judge depends on.
    train: ``() -> (judge, info)``: trains a Keras judge, returns it and a JSON-able dict.

  Returns:
    ``(judge, info)``: ``info`` with ``path`` and ``trained_now`` added.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from draw_tf import fileio  # pylint: disable=g-import-not-at-top
  meta_path = path[:-len(".keras")] + ".json"
  if os.path.exists(meta_path) and os.path.exists(path):  # the .json is written last
    with open(meta_path) as f:
      info = json.load(f)
    return keras.models.load_model(path, compile=False), {**info, "path": path, "trained_now": False}
  judge, info = train()
  with fileio.atomic_path(path) as tmp:
    judge.save(tmp)
  fileio.write_json(meta_path, info)
  return judge, {**info, "path": path, "trained_now": True}


def load_or_train_judge(judged: str, data_config, steps: int = 0, train_examples: int = 0,
                        test_examples: int = 0):
  """The cached judge of ``judged``, trained (and cached, atomically) first if there is none.

  Returns:
    ``(judge, info)``: a Keras model giving class probabilities, and the cache's
    metadata (``test_accuracy``, ``steps``, ``path``, ``trained_now``, ...).
  """
  train, test, sha = judge_splits(judged, data_config)
  if train_examples:
    train = train.head(train_examples)
  if test_examples:
    test = test.head(test_examples)
  epochs_steps = JUDGE_EPOCHS[judged] * (train.num_examples // JUDGE_BATCH)
  steps = steps or epochs_steps
  small = "" if (steps, train_examples, test_examples) == (epochs_steps, 0, 0) else (
      f"-small{steps}x{train_examples}x{test_examples}")
  path = judge_cache_path(data_config, f"{judged}-v{JUDGE_VERSION}-{sha[:16]}{small}")

  def train_judge():
    import keras  # pylint: disable=g-import-not-at-top
    from draw_tf import seeds  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(seeds.numpy_seed(0, seeds.SAMPLE_SCORE_JUDGE))
    num_classes = NUM_PAIRS if judged == "multi_mnist" else 10
    judge = build_judge(train.images.shape[1:], num_classes)
    judge.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    logging.info("Training the %s judge: %d steps of %d images from %d (cached in %s)", judged, steps,
                 JUDGE_BATCH, train.num_examples, path)
    start = time.time()
    judge.fit(judge_dataset(train, min(JUDGE_BATCH, train.num_examples)), steps_per_epoch=steps,
              epochs=1, verbose=2 if steps >= 100 else 0)
    return judge, {"dataset": judged, "version": JUDGE_VERSION, "data_sha256": sha, "steps": steps,
                   "batch_size": JUDGE_BATCH, "train_examples": train.num_examples,
                   "test_examples": test.num_examples, "test_accuracy": accuracy(judge, test),
                   "train_seconds": round(time.time() - start, 1)}

  return cached_judge(path, train_judge)


# ----------------------------------------------------------------------------
# The score


def ceiling_images(data_config, num: int):
  """The first ``num`` real test images as the model's ``config.data`` gives them (binarised or grey)."""
  from draw_tf import data  # pylint: disable=g-import-not-at-top
  config = data_config.copy_and_resolve_references()
  config.update(max_train_examples=0, max_test_examples=0)
  _, test, _ = data.load_splits(config)
  test = test.head(num)
  return test.images.astype(np.float32) / test.max_value


def sample_score(scored: ScoredModel, num: int = 1000, seed: int = 0, threshold: float = 0.9,
                 judge_steps: int = 0, judge_train_examples: int = 0, judge_test_examples: int = 0) -> dict:
  """The score of ``scored``'s prior samples, the ceiling of real test images, the judge's accuracy."""
  judged = JUDGED[scored.data_config.name]
  judge, info = load_or_train_judge(judged, scored.data_config, judge_steps, judge_train_examples,
                                    judge_test_examples)
  start = time.time()
  samples = prior_samples(scored.model, num, seed)
  sample_probs = predict(judge, samples)
  real = ceiling_images(scored.data_config, num)
  real_probs = predict(judge, real)
  labels_note = "unordered digit pairs (55 classes)" if judged == "multi_mnist" else "digits (10 classes)"
  return {
      "model": scored.description, "checkpoint": scored.checkpoint, "dataset": scored.data_config.name,
      "judge": judged,
      "classes": labels_note, "num": num, "seed": seed, "threshold": threshold,
      "score": confident_fraction(sample_probs, threshold),
      "ceiling": confident_fraction(real_probs, threshold), "ceiling_num": len(real),
      "ceiling_binarization": scored.data_config.binarization,
      "judge_test_accuracy": info["test_accuracy"], "judge_test_examples": info["test_examples"],
      "judge_steps": info["steps"], "judge_cache": info["path"], "judge_trained_now": info["trained_now"],
      "judge_version": JUDGE_VERSION, "sample_class_counts": class_counts(sample_probs, threshold),
      "ceiling_class_counts": class_counts(real_probs, threshold),
      "score_seconds": round(time.time() - start, 1),
  }


def table(result: dict) -> str:
  """The result as a few readable lines."""
  t = result["threshold"]
  return "\n".join([
      f"Sample score of {result['model']} {os.path.basename(result['checkpoint'])} ({result['dataset']}; "
      f"judge: {result['classes']})",
      f"  {'prior samples':20} {result['score']:7.1%}  of {result['num']} (seed {result['seed']}) "
      f"assigned to one class with p >= {t}",
      f"  {'real test (ceiling)':20} {result['ceiling']:7.1%}  of {result['ceiling_num']} "
      f"(binarization {result['ceiling_binarization']})",
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
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
  app.run(main)
