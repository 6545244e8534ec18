r"""Caption judge: does a 60 x 60 image show what its ``mnist_captions`` caption says?

    python tools/caption_judge.py [--judge_steps=0]   # trains it once (cached), prints its ceiling

The judge is a small convolutional network (the trunk of the MNIST digit judge of
``tools/sample_score.py``, ``tools/judges.py``) with three softmax heads that read the *scene* of an image
(:func:`draw_tf.data.captions.scene_of`), whatever the phrasing of its caption:

* the layout: side by side, stacked, or one digit at one of the four corners;
* the digit in slot 1: the left one, the top one, or the only one;
* the digit in slot 2: the right one, the bottom one, or none.

An image matches its caption when all three heads' most likely classes are the
caption's scene (for ``the digit 3 is on the right of the digit 5``: side by
side, 5, 3). :func:`caption_accuracy` is the fraction of images that match.

Training data: ``JUDGE_EPOCHS`` passes over images composed by the
``mnist_captions`` rule from the real MNIST *training* digits, over all 440
captions, the held-out compositions included: the held-out split binds the
generative model, not the instrument that measures it, which must read a
held-out scene as well as any other (it never sees a test digit). Images are
grey or Bernoulli-binarised, half each, as for ``tools/sample_score.py``'s
judges. Its ceiling, reported beside any score: its caption accuracy on the
real ``test`` and ``heldout`` images of ``mnist_captions``.

It is trained once (seeded) and cached like the sample-score judges
(``tools/sample_score.py``'s :func:`cached_judge`), in
``CACHE/judges/mnist_captions-vVERSION-SHA.keras``, ``SHA`` that of the MNIST
training digits and labels it was composed from.

``--judge_steps``, ``--judge_train_examples`` and ``--judge_test_examples``
make a small judge for the tests (cached under its own name).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)  # configs/ and tools/ when run as a script

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402

from draw_tf.cli import plumbing as cli  # noqa: E402
from draw_tf.data import captions  # noqa: E402
from tools import sample_score  # noqa: E402

# Bump when the judge's architecture, training or data change: older cached judges are then not used.
JUDGE_VERSION = 1
JUDGE_EPOCHS = 4
# The heads' sizes: layout, slot-1 digit, slot-2 digit (or none); the output concatenates their softmaxes.
HEADS = (len(captions.LAYOUTS), 10, 11)
_BOUNDS = np.cumsum((0,) + HEADS)


def build_caption_judge():
  """``sample_score.build_judge``'s trunk on 60 x 60 x 1 images, then the three heads, concatenated ``[batch, 27]``."""
  import keras  # pylint: disable=g-import-not-at-top
  trunk = sample_score.build_judge((captions.CANVAS_SIZE, captions.CANVAS_SIZE, 1), 1).layers[:-1]  # no softmax
  images = keras.Input((captions.CANVAS_SIZE, captions.CANVAS_SIZE, 1))
  features = images
  for layer in trunk:
    features = layer(features)
  heads = [keras.layers.Dense(size, activation="softmax", name=f"head{k}")(features)
           for k, size in enumerate(HEADS)]
  return keras.Model(images, keras.layers.Concatenate()(heads), name="caption_judge")


def scene_loss(scenes, probs):
  """The sum of the three heads' cross-entropies: ``scenes`` ``int [batch, 3]``, ``probs`` ``[batch, 27]``."""
  import keras  # pylint: disable=g-import-not-at-top
  return sum(keras.losses.sparse_categorical_crossentropy(scenes[:, k], probs[:, _BOUNDS[k]:_BOUNDS[k + 1]])
             for k in range(len(HEADS)))


def predicted_scenes(judge, images) -> np.ndarray:
  """``int64 [N, 3]``: the judge's most likely ``(layout, slot 1, slot 2)`` of float images ``[N, 60, 60, 1]`` in [0, 1]."""
  probs = sample_score.predict(judge, images)
  return np.stack([probs[:, _BOUNDS[k]:_BOUNDS[k + 1]].argmax(axis=1) for k in range(len(HEADS))], axis=1)


def caption_labels(caption_list) -> np.ndarray:
  """Label rows ``int64 [N, 3]`` of captions given as strings, token ids ``int [N, L]`` or label rows ``[N, 3]``."""
  if len(caption_list) and isinstance(caption_list[0], str):
    return np.array([captions.parse(c) for c in caption_list], np.int64)
  array = np.asarray(caption_list, np.int64)
  if array.ndim == 2 and array.shape[1] == 3:
    return array
  return np.array([captions.parse(captions.decode(ids)) for ids in array], np.int64)


def caption_matches(judge, images, caption_list) -> np.ndarray:
  """``bool [N]``: whether the judge reads in each image the scene its caption states."""
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[1:] != (captions.CANVAS_SIZE, captions.CANVAS_SIZE, 1):
    raise ValueError(f"images must be [N, 60, 60, 1] in [0, 1], got shape {images.shape}.")
  scenes = captions.scene_of(caption_labels(caption_list))
  if len(scenes) != len(images):
    raise ValueError(f"{len(images)} images but {len(scenes)} captions.")
  return np.all(predicted_scenes(judge, images) == scenes, axis=1)


def caption_accuracy(images, caption_list, judge=None, data_config=None) -> float:
  """The fraction of images that show what their captions say (the cached standard judge by default).

  Args:
    images: float ``[N, 60, 60, 1]`` in [0, 1] (generated, or real for the ceiling).
    caption_list: N captions: strings, token ids ``int [N, L]`` or label rows ``[N, 3]``.
    judge: a judge from :func:`load_or_train_caption_judge`; default: the standard one.
    data_config: where MNIST and the cache are (``config.data``); default: ``configs/default.py``'s.
  """
  if judge is None:
    judge, _ = load_or_train_caption_judge(data_config if data_config is not None else default_data_config())
  return float(np.mean(caption_matches(judge, images, caption_list)))


def default_data_config():
  """``configs/default.py``'s ``config.data`` naming ``mnist_captions``."""
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config().data
  config.name = "mnist_captions"
  return config


def _grey(split):
  return split.images.astype(np.float32) / split.max_value


def load_or_train_caption_judge(data_config, steps: int = 0, train_examples: int = 0, test_examples: int = 0):
  """The cached caption judge, trained (and cached, atomically) first if there is none.

  Args:
    data_config: ``config.data`` (source, seed of the ``test`` / ``heldout`` splits, cache folder).
    steps: training steps (0: ``JUDGE_EPOCHS`` passes over the training images).
    train_examples: training images composed (0: one per MNIST training digit).
    test_examples: real ``test`` and ``heldout`` images its ceiling is measured on (0: all).

  Returns:
    ``(judge, info)``: ``info`` holds ``test_accuracy`` and ``heldout_accuracy``
    (the ceilings), ``steps``, ``path``, ``trained_now``, ...
  """
  splits = captions.load_caption_splits(data_config)
  digits = splits.digits
  sha = hashlib.sha256()
  for array in digits:
    sha.update(np.ascontiguousarray(array).tobytes())
  sha = sha.hexdigest()
  num_train = train_examples or len(digits.labels)
  epochs_steps = JUDGE_EPOCHS * (num_train // sample_score.JUDGE_BATCH)
  steps = steps or epochs_steps
  small = "" if (steps, train_examples, test_examples) == (epochs_steps, 0, 0) else (
      f"-small{steps}x{train_examples}x{test_examples}")
  path = sample_score.judge_cache_path(data_config, f"mnist_captions-v{JUDGE_VERSION}-{sha[:16]}{small}")

  def train_judge():
    import keras  # pylint: disable=g-import-not-at-top
    from draw_tf import data, seeds  # pylint: disable=g-import-not-at-top
    seed = seeds.numpy_seed(0, seeds.SAMPLE_SCORE_JUDGE)
    layout = captions.draw_layout(digits.labels, np.random.default_rng(seed), num_train, captions.ALL_LABELS)
    train = data.Split(captions.paste_digits(digits.images, layout.sources, layout.corners), 255, False,
                       captions.scene_of(layout.labels))
    keras.utils.set_random_seed(seed)
    judge = build_caption_judge()
    judge.compile(optimizer=keras.optimizers.Adam(1e-3), loss=scene_loss)
    logging.info("Training the mnist_captions judge: %d steps of %d images from %d (cached in %s)", steps,
                 sample_score.JUDGE_BATCH, num_train, path)
    start = time.time()
    judge.fit(sample_score.judge_dataset(train, min(sample_score.JUDGE_BATCH, num_train)), steps_per_epoch=steps,
              epochs=1, verbose=2 if steps >= 100 else 0)
    info = {"dataset": "mnist_captions", "version": JUDGE_VERSION, "data_sha256": sha, "steps": steps,
            "batch_size": sample_score.JUDGE_BATCH, "train_examples": num_train,
            "train_seconds": round(time.time() - start, 1)}
    for name in ("test", "heldout"):
      split = getattr(splits, name).head(test_examples) if test_examples else getattr(splits, name)
      info[f"{name}_accuracy"] = caption_accuracy(_grey(split), split.labels, judge)
      info[f"{name}_examples"] = split.num_examples
    return judge, info

  return sample_score.cached_judge(path, train_judge)


def define_flags() -> None:
  """The command's flags (defined when run, so tests can import this file)."""
  flags.DEFINE_integer("judge_steps", 0, "Judge training steps (0: the standard judge). For tests.")
  flags.DEFINE_integer("judge_train_examples", 0, "Compose N training images only (0: one per MNIST "
                       "training digit). For tests.")
  flags.DEFINE_integer("judge_test_examples", 0, "Measure the ceiling on the first N test and heldout "
                       "images only (0: all). For tests.")
  flags.DEFINE_string("cache_dir", "", "The MNIST and judge cache folder (default: config.data.cache_dir's).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  config = default_data_config()
  if f.cache_dir:
    config.cache_dir = f.cache_dir
  with cli.user_errors("caption_judge"):
    _, info = load_or_train_caption_judge(config, f.judge_steps, f.judge_train_examples, f.judge_test_examples)
  print(f"Caption judge ({info['path']}): caption accuracy of real images {info['test_accuracy']:.2%} on "
        f"{info['test_examples']} test, {info['heldout_accuracy']:.2%} on {info['heldout_examples']} heldout "
        "(the ceilings)", file=sys.stderr, flush=True)
  print(json.dumps(info))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  define_flags()
  cli.prepare(sys.argv)
  app.run(main)
