"""The tasks a config can train: ``generate`` (DRAW, :class:`DrawModel`), ``classify`` and ``caption``.

After the TF Model Garden's ``Task``: a task owns what differs between a
generative DRAW run and an attention-classifier run (``config.task``,
``configs/cluttered_mnist_classify.py``), so the training loop
(:func:`draw_tf.training.train.train_and_evaluate`), ``draw-eval`` and
``draw-sample`` call the task instead of branching on it:

======================  ========================================  =====================================
operation               ``generate``                              ``classify``
======================  ========================================  =====================================
build_model             ``DrawModel(**config.model, dtype=...)``  ``DrawClassifier(**config.model)``
compile                 the negative ELBO, KL warm-up             cross-entropy and accuracy
datasets                images (and fixed noise, if configured)   ``(images, labels)``
evaluate                the NLL bounds (``evaluate_split``)       test error (``classification_error``)
pictures                ``samples.png`` and ``drawing.gif``       ``glimpses.gif``
log_test                test NLL bound, recon, KL, active units   test error %
eval_summary            ``nll_bound`` (and ``iw_bound``)          the split's error %
write_workdir_pictures  (the sampler draws them)                  ``glimpses.gif`` for ``draw-sample``
======================  ========================================  =====================================

``caption`` (alignDRAW, :class:`draw_tf.AlignDrawModel`, ``configs/mnist_captions.py``) is
``generate`` on ``(image, caption)`` pairs of ``mnist_captions``: its splits, pipelines,
evaluation (also ``--split=heldout``), pictures (a row per caption) and ``draw-sample
--caption=`` are in :mod:`draw_tf.training.captioning`.

Example::

    task = tasks.get(config)           # config.task, default "generate"
    model = task.build_model(config)
    task.compile(model, optimizer, config.train)
"""

from __future__ import annotations

import abc
import os
from typing import NamedTuple

import keras
import tensorflow as tf
from absl import logging

from draw_tf.runs import config_check
from draw_tf import data
from draw_tf.model import registry
from draw_tf import seeds
from draw_tf.errors import ConfigError, UsageError
from draw_tf.model import visualize
from draw_tf.runs import workdir as workdir_lib
from draw_tf.model.classifier import DrawClassifier, save_glimpse_gif
from draw_tf.training import captioning
from draw_tf.training.evaluation import classification_error, evaluate_split
from draw_tf.model.draw_model import DrawModel

SAMPLES_DIR = "samples"


class Splits(NamedTuple):
  """What a training run reads (:meth:`Task.load_splits`)."""
  train: data.Split
  eval: data.Split  # what training evaluates on: the validation split if one is held out, else test
  eval_name: str  # "validation" or "test"
  test: data.Split


class Task(abc.ABC):
  """What the training loop, ``draw-eval`` and ``draw-sample`` need from a task.

  Attributes:
    name: the value of ``config.task``.
    with_labels: the datasets yield ``(images, labels)`` rather than images.
  """

  name: str
  with_labels: bool = False

  @abc.abstractmethod
  def build_model(self, config) -> keras.Model:
    """The untrained model of ``config`` (built inside the strategy's scope)."""

  @abc.abstractmethod
  def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, train_config) -> None:
    """Compiles ``model`` with the task's loss and metrics (inside the strategy's scope)."""

  # draw-eval's --split choices.
  EVAL_SPLITS: tuple = ("test", "train")

  def load_splits(self, config) -> Splits:
    """The splits of a run; training's evaluations use a held-out validation split if any.

    Raises:
      ConfigError: the dataset's images do not have ``config.model.image_shape``.
    """
    train_split, test_split, info = data.load_splits(config.data)
    train_split, validation_split = data.hold_out_validation(train_split, config.data)
    check_image_shape(info.name, info.image_shape, config)
    if validation_split is not None:
      return Splits(train_split, validation_split, "validation", test_split)
    return Splits(train_split, test_split, "test", test_split)

  def eval_split(self, config, name: str) -> tuple:
    """``(split, info)``: ``draw-eval --split=name`` (binarised as training evaluates) and the :class:`data.DataInfo`.

    Raises:
      UsageError: ``name`` is not one of :attr:`EVAL_SPLITS`.
    """
    if name not in self.EVAL_SPLITS:
      raise UsageError(f"--split={name}: a {self.name} model is evaluated on one of {', '.join(self.EVAL_SPLITS)}.")
    train, test, info = data.load_splits(config.data)
    if name == "test":
      return test, info
    if config.data.binarization == "dynamic":
      train = data.binarize_once(train, seed=seeds.numpy_seed(config.data.seed, seeds.TRAIN_BINARIZATION))
    return train, info

  def noise_shape(self, config, model) -> tuple | None:
    """``(T, latent_dim)`` when the datasets carry the posterior noise (fixed-noise runs), else None."""
    del config, model
    return None

  def train_dataset(self, config, split: data.Split, start_step: int, noise_shape=None) -> tf.data.Dataset:
    """The endless training stream from ``start_step`` (:func:`draw_tf.data.train_dataset`)."""
    return data.train_dataset(
        split, config.train.batch_size, config.data.seed,
        dynamic_binarization=config.data.binarization == "dynamic",
        start_step=start_step, noise_shape=noise_shape, with_labels=self.with_labels,
        fresh=data.load_fresh_clutter(config.data, split))

  def eval_dataset(self, config, split: data.Split, noise_shape=None) -> tf.data.Dataset:
    """Every example of ``split`` once, for ``model.evaluate`` (:func:`draw_tf.data.eval_dataset`)."""
    return data.eval_dataset(split, config.eval.batch_size, noise_shape, config.data.seed,
                             with_labels=self.with_labels)

  def read_latent_usage(self, model) -> None:
    """Copies what the last evaluation measured of the latents into ``model.latent_usage_last``."""
    del model

  def test_metrics(self, test: dict) -> dict:
    """``model.evaluate``'s test metrics with the task's derived ones added."""
    return test

  # Evaluation metrics (after test_metrics) where lower is better: eval.keep_best's choices.
  LOWER_IS_BETTER: tuple = ("loss",)
  # What the draw-eval command a run ends with adds for this task (the IW bound of a generative model).
  EVAL_FLAGS: str = ""

  @abc.abstractmethod
  def log_test(self, step: int, epoch: int, test: dict, split: str = "test") -> None:
    """Logs one line for the evaluation metrics of a training step (on ``split``)."""

  @abc.abstractmethod
  def evaluate(self, model, split: data.Split, split_name: str, config, iw_samples: int = 1,
               batch_size: int = 500, seed: int = 0) -> dict:
    """``draw-eval``'s fields for ``model`` over every example of ``split`` (``"test"`` or ``"train"``)."""

  @abc.abstractmethod
  def pictures(self, model, eval_config, samples_dir: str, step: int, test_split: data.Split,
               writer: tf.summary.SummaryWriter) -> None:
    """Writes the training run's pictures of ``step`` into ``samples_dir`` (and TensorBoard)."""

  @abc.abstractmethod
  def eval_summary(self, result: dict) -> str:
    """``draw-eval``'s one-phrase summary of its result (the fields of :meth:`evaluate`)."""

  @abc.abstractmethod
  def next_commands(self, workdir: str, evaluated: str = "test", out_dir: str | None = None) -> list:
    """The commands ``draw-eval`` suggests after evaluating split ``evaluated`` (files in ``out_dir``, default ``workdir``)."""

  def write_workdir_pictures(self, source, out: str, num: int, seed=None, caption=None) -> str | None:
    """``draw-sample`` on a workdir or ``pretrained:NAME`` (``source``, a ``workdir.ModelSource``): the task's pictures.

    Returns:
      None when the pictures are DRAW samples, drawn by the sampler
      (:mod:`draw_tf.export.sampler`, any backend); else what this wrote.

    Raises:
      UsageError: a ``caption`` for a model that draws without one.
    """
    del out, num, seed
    if caption is not None:
      raise UsageError(f"--caption: {source.name} holds a {self.name} model, which draws no captions; "
                       "leave --caption out (captions are for configs/mnist_captions.py runs).")
    return None


def check_image_shape(dataset: str, shape, config) -> None:
  """Refuses (ConfigError) a ``config.model.image_shape`` other than the dataset's."""
  if tuple(shape) != tuple(config.model.image_shape):
    raise ConfigError(
        f"Dataset {dataset!r} has images of shape {tuple(shape)}, but config.model.image_shape is "
        f"{tuple(config.model.image_shape)}; pass --config.model.image_shape=\"{tuple(shape)}\".")


# ----------------------------------------------------------------------------
# generate: DRAW


def write_samples(model: DrawModel, samples_dir: str, num_samples: int = 64,
                  num_gif_samples: int = 16, seed: int = 0, tag: str | None = None) -> dict:
  """Writes a PNG grid of prior samples and a GIF of the drawing sequence.

  Args:
    model: a (trained) DRAW.
    samples_dir: output folder.
    num_samples: images in the PNG grid.
    num_gif_samples: images drawn in the GIF (the first of the grid's).
    seed: prior-noise seed.
    tag: optional suffix; also writes ``samples_{tag}.png``.

  Returns:
    ``{"png": path, "gif": path, "output": GenerateOutput}``.
  """
  out = model.generate(max(num_samples, num_gif_samples), seed=seed)
  png = visualize.save_image_grid(out.images[:num_samples], os.path.join(samples_dir, "samples.png"))
  if tag:
    visualize.save_image_grid(out.images[:num_samples], os.path.join(samples_dir, f"samples_{tag}.png"))
  windows = out.windows[:num_gif_samples] if model.cell.write_attention else None
  gif = visualize.save_drawing_gif(out.canvases[:num_gif_samples], os.path.join(samples_dir, "drawing.gif"),
                                   windows, write_size=model.cell.write_size)
  return {"png": png, "gif": gif, "output": out}


class GenerateTask(Task):
  """DRAW: trained on the negative ELBO, evaluated by the NLL bounds, pictured by its samples."""

  name = "generate"

  def build_model(self, config) -> DrawModel:  # and alignDRAW's AlignDrawModel (draw_tf.model.registry.MODELS)
    return workdir_lib.build_model(config, dtype=config.train.mixed_precision)

  def compile(self, model, optimizer, train_config) -> None:
    model.compile(optimizer=optimizer, jit_compile=config_check.jit_setting(train_config.jit_compile),
                  backward=train_config.get("backward", "auto"),
                  kl_warmup_steps=train_config.kl_warmup_steps)

  def noise_shape(self, config, model):
    return (model.num_steps, model.latent_dim) if config.train.deterministic_noise else None

  def read_latent_usage(self, model) -> None:
    model.latent_usage_last = model.latent_usage.summary()

  LOWER_IS_BETTER = ("loss", "nll_bound", "recon", "kl")
  EVAL_FLAGS = " --iw_samples=100"

  def log_test(self, step, epoch, test, split="test") -> None:
    logging.info("Step %d (epoch %d): %s nll_bound %.2f nats (recon %.2f, kl %.2f, "
                 "active units %d)", step, epoch, split, test.get("nll_bound", float("nan")),
                 test.get("recon", float("nan")), test.get("kl", float("nan")),
                 test.get("active_units", -1))

  def evaluate(self, model, split, split_name, config, iw_samples=1, batch_size=500, seed=0) -> dict:
    return evaluate_split(model, split, iw_samples, batch_size, seed, jit_compile=model.jit_step)

  def eval_summary(self, result) -> str:
    summary = f"nll_bound {result['nll_bound']:.2f} nats per image"
    if "iw_bound" in result:
      summary += f", iw_bound {result['iw_bound']:.2f} with K = {result['iw_samples']}"
    return summary

  def next_commands(self, workdir, evaluated="test", out_dir=None) -> list:
    del evaluated
    return [f"draw-sample --model={workdir} --out={os.path.join(out_dir or workdir, 'samples.png')}",
            f"draw-export --workdir={workdir} --output_dir={os.path.join(out_dir or workdir, 'export')}"]

  def pictures(self, model, eval_config, samples_dir, step, test_split, writer) -> None:
    ev = eval_config
    written = write_samples(model, samples_dir, ev.num_samples, ev.num_gif_samples, ev.sample_seed,
                            tag=f"step{step:07d}")
    out = written["output"]
    with writer.as_default(step=step):
      tf.summary.image("samples", visualize.image_grid(out.images[:ev.num_samples])[None])
      tf.summary.image("drawing", visualize.drawing_strip(out.canvases))


# ----------------------------------------------------------------------------
# classify: the attention classifier


class ClassifyTask(Task):
  """The attention classifier: trained on cross-entropy, evaluated by its error, pictured by its glimpses."""

  name = "classify"
  with_labels = True

  def build_model(self, config) -> DrawClassifier:
    return DrawClassifier(**config.model)

  def compile(self, model, optimizer, train_config) -> None:
    # "auto" is the DrawModel's fast path; the classifier was not measured with XLA.
    model.compile(optimizer=optimizer,
                  jit_compile=config_check.jit_setting(train_config.jit_compile) is True)
    optimizer.build(model.trainable_variables)

  def test_metrics(self, test) -> dict:
    if "accuracy" in test:
      test["error_percent"] = 100.0 * (1.0 - test["accuracy"])
    return test

  LOWER_IS_BETTER = ("loss", "error_percent")

  def log_test(self, step, epoch, test, split="test") -> None:
    logging.info("Step %d (epoch %d): %s error %.2f %% (loss %.4f)", step, epoch, split,
                 test["error_percent"], test.get("loss", float("nan")))

  def evaluate(self, model, split, split_name, config, iw_samples=1, batch_size=500, seed=0) -> dict:
    result = classification_error(model, split, batch_size)
    if split_name == "train":
      result["train_error_percent"] = result.pop("test_error_percent")
    return result

  def eval_summary(self, result) -> str:
    return f"{result['split']} error {100.0 - 100.0 * result['accuracy']:.2f}%"

  def next_commands(self, workdir, evaluated="test", out_dir=None) -> list:
    del evaluated
    return [f"draw-sample --model={workdir} --out={os.path.join(out_dir or workdir, 'glimpses.gif')}"]

  def pictures(self, model, eval_config, samples_dir, step, test_split, writer) -> None:
    split = test_split.head(eval_config.num_gif_samples)
    save_glimpse_gif(model, split.images / split.max_value, os.path.join(samples_dir, "glimpses.gif"))

  def write_workdir_pictures(self, source, out, num, seed=None, caption=None) -> str:
    """Writes the glimpse GIF over the first ``num`` test images (``out`` must be a ``.gif``)."""
    super().write_workdir_pictures(source, out, num, seed, caption)  # refuses a caption
    if os.path.splitext(out)[1].lower() != ".gif":
      raise ValueError(f"--out={out}: {source.name} holds a classifier; it gives a .gif of its glimpses.")
    model = source.load()
    _, test, _ = data.load_splits(source.config.data)
    chosen = test.head(num)
    logits, _ = save_glimpse_gif(model, chosen.images / chosen.max_value, out)
    logging.info("Wrote the glimpses over %d test images to %s (labels %s, predicted %s)", num, out,
                 [int(v) for v in chosen.labels], [int(v) for v in logits.argmax(-1)])
    return "the classifier's glimpses"


# ----------------------------------------------------------------------------
# caption: alignDRAW


class CaptionTask(GenerateTask):
  """alignDRAW: DRAW's task on ``(image, caption)`` pairs (:mod:`draw_tf.training.captioning`)."""

  name = "caption"
  EVAL_SPLITS = captioning.SPLITS
  EVAL_FLAGS = " --split=heldout"

  def load_splits(self, config) -> Splits:
    """Data epoch 0's pairs (to count steps on), the validation split training evaluates on, the test split."""
    check_image_shape("mnist_captions", captioning.info(config).image_shape, config)
    test = captioning.split(config, "test")
    return Splits(captioning.training_pairs(config), captioning.split(config, "validation"), "validation", test)

  def eval_split(self, config, name):
    return captioning.split(config, name), captioning.info(config)

  def train_dataset(self, config, split, start_step, noise_shape=None):
    del split  # composed from the training digits, afresh every data epoch
    return captioning.train_dataset(config, start_step, noise_shape)

  def eval_dataset(self, config, split, noise_shape=None):
    return captioning.eval_dataset(config, split, noise_shape)

  def evaluate(self, model, split, split_name, config, iw_samples=1, batch_size=500, seed=0) -> dict:
    return captioning.evaluate(model, split, iw_samples, batch_size, seed)

  def eval_summary(self, result) -> str:
    return f"{result.get('split', 'test')} {super().eval_summary(result)}"

  def next_commands(self, workdir, evaluated="test", out_dir=None) -> list:
    # The bound on the other of the two splits the results report (test captions, held-out compositions).
    other = "heldout" if evaluated == "test" else "test"
    return [f"draw-eval --workdir={workdir} --split={other}",
            f"draw-sample --model={workdir} --caption=\"{captioning.EXAMPLE}\" "
            f"--out={os.path.join(out_dir or workdir, 'caption.png')}"]

  def pictures(self, model, eval_config, samples_dir, step, test_split, writer) -> None:
    out, per_row = captioning.write_caption_samples(model, samples_dir, eval_config, step)
    with writer.as_default(step=step):
      tf.summary.image("samples", visualize.image_grid(out.images, cols=per_row)[None])
      tf.summary.image("drawing", visualize.drawing_strip(out.canvases[::per_row]))

  def write_workdir_pictures(self, source, out, num, seed=None, caption=None) -> str:
    return captioning.draw_caption(source, out, num, seed, caption)


TASKS = {task.name: task for task in (GenerateTask(), ClassifyTask(), CaptionTask())}
if tuple(TASKS) != registry.TASK_NAMES:  # the model layer's table names the tasks
  raise AssertionError(f"tasks.TASKS {tuple(TASKS)} != draw_tf.model.registry.TASK_NAMES {registry.TASK_NAMES}")


def get(config) -> Task:
  """The task of a config (``config.task``; configs written before the field: ``generate``)."""
  return TASKS[registry.task_of(config)]
