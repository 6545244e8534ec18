"""Evaluation library: ``evaluate_workdir(workdir)``, the work of ``draw-eval``.

Restores the latest checkpoint of a training workdir
(:func:`draw_tf.runs.workdir.load_model_from_workdir`), runs the workdir's task's
evaluation over every example of a split (:mod:`draw_tf.training.tasks`: the NLL bounds
of :func:`draw_tf.training.evaluation.evaluate_split` for DRAW, the test error of
:func:`draw_tf.training.evaluation.classification_error` for the classifier) and writes
``workdir/eval.json``.

Example::

    result = eval_lib.evaluate_workdir("/tmp/quick", iw_samples=10)
    print(result["nll_bound"], result["iw_bound"])
"""

from __future__ import annotations

import os
import time

from draw_tf import pretrained
from draw_tf.training import tasks
from draw_tf.model import weight_average
from draw_tf.runs import workdir as workdir_lib
from draw_tf.errors import UsageError
from draw_tf.fileio import write_json

EVAL_FILE = "eval.json"


def write_eval_json(workdir: str, result: dict) -> str:
  """Writes ``result`` to ``workdir/eval.json`` atomically; returns the path."""
  path = os.path.join(workdir, EVAL_FILE)
  write_json(path, result)
  return path


def evaluate_workdir(workdir: str, iw_samples: int = 1, split: str = "test", batch_size: int | None = None,
                     seed: int = 0, write: bool = True, checkpoint: str = "latest",
                     weights: str = "average") -> dict:
  """Evaluates a training workdir's latest checkpoint; writes ``workdir/eval.json``.

  Args:
    workdir: a training workdir, or ``pretrained:NAME`` (a shipped model,
      :mod:`draw_tf.pretrained`; nothing is written, there is no workdir).
    iw_samples: ``K`` for the importance-weighted bound (1: ELBO only).
    split: ``test`` or ``train`` (a caption model also ``heldout``, ``validation``:
      :attr:`draw_tf.training.tasks.Task.EVAL_SPLITS`).
    batch_size: rollouts per forward pass (default ``config.eval.batch_size``).
    seed: noise seed.
    write: write ``eval.json`` (``draw-eval`` prints the result first, then writes).
    checkpoint: ``latest``, ``best`` (the one ``eval.keep_best`` kept) or a checkpoint path.
    weights: ``average`` (the run's moving average of the weights when it kept one,
      ``train.ema_decay``) or ``raw`` (:func:`draw_tf.runs.workdir.load_model_from_workdir`).

  Returns:
    The dict written to ``eval.json`` (nll_bound, recon, kl, num_examples,
    iw_bound and iw_samples when K > 1, plus step, split, dataset, data
    source, checkpoint, seconds, and ``weights``: ``average`` or ``raw``, what was evaluated).

  Raises:
    NoCheckpointError: the workdir has no checkpoint.
    UsageError: a split the workdir's task does not have.
  """
  start = time.time()
  name = pretrained.parse(workdir)
  evaluated = "raw"
  if name is not None:  # pretrained:NAME, a shipped model (draw_tf.pretrained): no workdir, no eval.json
    if checkpoint != "latest":
      raise UsageError(f"--checkpoint={checkpoint}: a pretrained model has one set of weights; leave --checkpoint out.")
    config, model = pretrained.config(name), pretrained.load(name, compile=False)
    checkpoint, step, write = workdir, int(pretrained.read_manifest(name)["training"]["steps"]), False
    evaluated = "pretrained"
  else:
    workdir = os.path.abspath(workdir)
    config = workdir_lib.load_config(workdir)
    checkpoint = workdir_lib.resolve_checkpoint(workdir, checkpoint)
    model = workdir_lib.load_model_from_workdir(workdir, checkpoint, weights)
    if weights == "average" and weight_average.checkpoint_has_average(checkpoint):
      evaluated = "average"
    step = workdir_lib.checkpoint_step(checkpoint)
  task = tasks.get(config)
  chosen, info = task.eval_split(config, split)
  result = task.evaluate(model, chosen, split, config, iw_samples, batch_size or config.eval.batch_size, seed)
  result.update(split=split, step=step, checkpoint=checkpoint, dataset=info.name, data_source=info.source,
                binarization=info.binarization, seed=seed, weights=evaluated, seconds=round(time.time() - start, 1))
  if write:
    write_eval_json(workdir, result)
  return result
