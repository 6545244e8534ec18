"""Checks of what users feed a DRAW model: images, noise and Keras batches.

One place for each check (and :func:`positive_int`, the count rule the model's
arguments share with the config checks), so that ``DrawModel``, ``DrawClassifier`` and the
fused sampler refuse bad input with the same message, which says what to do.
"""

from __future__ import annotations

import math
import numbers

import tensorflow as tf

from draw_tf.errors import ConfigError


def positive_int(name: str, value) -> int:
  """``value`` as an int when it is an integer >= 1 (2.0 is fine, 2.7 is not); else ConfigError."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real)
      or not math.isfinite(value) or value != int(value) or value < 1):
    raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
  return int(value)


def check_image_shape(images, image_shape, owner: str = "DrawModel"):
  """Returns ``images`` as a tensor after checking ``[batch, *image_shape]`` and a float dtype.

  Raises:
    ValueError: another shape (with a hint for a missing channel axis).
    TypeError: integer images (with the conversion to use).
  """
  images = tf.convert_to_tensor(images)
  expected = tuple(image_shape)
  if images.shape.rank is not None and tuple(images.shape[1:]) != expected:
    hint = ""
    if images.shape.rank == len(expected) and expected[-1] == 1:
      hint = " Add a channel axis, e.g. images[..., None]."
    raise ValueError(
        f"{owner} expects images of shape [batch, {', '.join(map(str, expected))}], "
        f"got {images.shape}.{hint}")
  if not images.dtype.is_floating:
    raise TypeError(
        f"{owner} expects float images in [0, 1], got dtype {images.dtype.name}; "
        "convert with tf.cast(images, tf.float32) / 255.")
  return images


def check_images(images, image_shape, owner: str = "DrawModel"):
  """:func:`check_image_shape`, then float32 with run-time checks that the values are in [0, 1].

  Returns:
    float32 ``[batch, *image_shape]``; running it raises
    ``InvalidArgumentError`` on NaN, Inf or values outside [0, 1].
  """
  images = tf.cast(check_image_shape(images, image_shape, owner), tf.float32)
  finite = tf.debugging.assert_equal(  # first: NaN is neither below 0 nor above 1
      tf.reduce_all(tf.math.is_finite(images)), True,
      message=f"{owner} expects images in [0, 1]; got NaN or Inf (check the data).")
  with tf.control_dependencies([finite]):
    images = tf.identity(images)
  with tf.control_dependencies([
      tf.debugging.assert_greater_equal(
          images, 0.0, message=f"{owner} expects images in [0, 1]; got a value below 0."),
      tf.debugging.assert_less_equal(
          images, 1.0, message=f"{owner} expects images in [0, 1]; got a value above 1 "
          "(divide 8-bit images by 255)."),
  ]):
    return tf.identity(images)


def check_noise(noise, num_steps: int, latent_dim: int):
  """Returns ``noise`` as float32 after checking the shape ``[batch, num_steps, latent_dim]``.

  Raises:
    ValueError: another static shape.
  """
  noise = tf.convert_to_tensor(noise, dtype=tf.float32)
  expected = (int(num_steps), int(latent_dim))
  if noise.shape.rank is not None and (noise.shape.rank != 3 or tuple(noise.shape[1:]) != expected):
    raise ValueError(
        f"noise must have shape [batch, num_steps={expected[0]}, latent_dim={expected[1]}], "
        f"got {noise.shape}.")
  return noise


def unpack_batch(data):
  """Returns ``(images, noise_or_None)`` from what Keras passes to a step.

  Accepts ``images``, ``(images,)``, ``(images, labels[, weights])`` and
  ``{"images": ..., "noise": ...}`` (noise optional), or a tuple whose first
  element is such a dict.
  """
  if isinstance(data, (tuple, list)):
    if not data:
      raise ValueError("DrawModel got an empty batch structure.")
    data = data[0]
  if isinstance(data, dict):
    if "images" not in data:
      raise ValueError(
          f"A dict batch must have an 'images' key (and optionally 'noise'); got keys {sorted(data)}.")
    unknown = set(data) - {"images", "noise"}
    if unknown:
      raise ValueError(f"Unknown keys {sorted(unknown)} in a DrawModel batch; allowed: images, noise.")
    return data["images"], data.get("noise")
  return data, None
