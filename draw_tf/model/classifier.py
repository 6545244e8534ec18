"""DRAW's attention reader as a classifier (paper section 4.1, cluttered MNIST).

An LSTM looks at an image through ``G`` glimpses of ``N x N`` Gaussian filters
(the same filterbank as DRAW's read, :mod:`draw_tf.model.filterbank`), each placed by
the previous state, and classifies from its last state:

    h_0 = 0
    g_t, window_t = glimpse(x, h_{t-1})          # eqs. 19-27, image only
    h_t = LSTM(h_{t-1}, g_t)                     t = 1..G
    p(y | x) = softmax(W h_G + b)

With ``h_0 = 0`` the first window is the layer's bias: at initialisation
(centre 0, ``log delta~ = 0``) it is centred and its ``N`` filters span the
whole image. The paper's setting: 100 x 100 cluttered MNIST, ``G = 8``
glimpses of 12 x 12, 256 LSTM units.

Example::

    model = DrawClassifier(image_shape=(100, 100, 1), num_glimpses=8, glimpse_size=12)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))   # loss and accuracy by default
    model.fit(dataset, epochs=10)        # dataset of (images [b, 100, 100, 1], labels [b])
    windows = model.glimpse_windows(images)   # [b, 8, 4] where it looked
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from draw_tf.model import attention
from draw_tf.model import visualize
from draw_tf.model import inputs as input_checks
from draw_tf.model.layers import LSTMCell

_PACKAGE = "draw_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DrawClassifier(keras.Model):
  """Recurrent attention classifier with DRAW's differentiable read.

  Args:
    image_shape: ``(height, width, channels)``.
    num_glimpses: ``G``, glimpses before the decision.
    glimpse_size: ``N``, each glimpse has ``N x N`` pixels per channel.
    units: LSTM state size.
    num_classes: number of classes.
    bounded_window: keep every glimpse on the image (``tanh`` centre, stride at most
      twice the image-spanning one; :class:`draw_tf.model.attention.AttentionGlimpse`).
      Unbounded (the paper's maps, the default for compatibility), a window that
      wanders off the image reads zeros, gets no gradient and never returns:
      ``configs/cluttered_mnist_classify.py`` turns it on.

  Call args:
    images: ``[batch, H, W, C]`` float in [0, 1].

  Returns from call:
    ``[batch, num_classes]`` logits.
  """

  def __init__(self, image_shape: Sequence[int] = (100, 100, 1), num_glimpses: int = 8,
               glimpse_size: int = 12, units: int = 256, num_classes: int = 10,
               bounded_window: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(int(d) for d in image_shape)
    if len(self.image_shape) != 3 or min(self.image_shape) < 1:
      raise ValueError(f"image_shape must be (height, width, channels), got {image_shape!r}.")
    for name, value in [("num_glimpses", num_glimpses), ("glimpse_size", glimpse_size),
                        ("units", units), ("num_classes", num_classes)]:
      if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    self.num_glimpses = int(num_glimpses)
    self.glimpse_size = int(glimpse_size)
    self.units = int(units)
    self.num_classes = int(num_classes)
    self.bounded_window = bool(bounded_window)
    self.reader = attention.AttentionGlimpse(self.glimpse_size, self.bounded_window, name="glimpse")
    self.lstm = LSTMCell(self.units, name="lstm")
    self.head = keras.layers.Dense(self.num_classes, name="logits")
    self.reader.build((None, *self.image_shape), (None, self.units))
    self.lstm.build((None, self.glimpse_size**2 * self.image_shape[-1]))
    self.head.build((None, self.units))
    self.built = True

  def get_config(self):
    return {"name": self.name, "trainable": self.trainable, "image_shape": list(self.image_shape),
            "num_glimpses": self.num_glimpses, "glimpse_size": self.glimpse_size,
            "units": self.units, "num_classes": self.num_classes, "bounded_window": self.bounded_window}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def build(self, input_shape=None):
    self.built = True

  def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
    """Keras ``compile`` with sparse softmax cross-entropy and accuracy by default."""
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    metrics = metrics if metrics is not None else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

  def _check_images(self, images):
    return tf.cast(input_checks.check_image_shape(images, self.image_shape, "DrawClassifier"), tf.float32)

  def read(self, images):
    """Runs the ``G`` glimpses.

    Args:
      images: ``[batch, H, W, C]`` float32.

    Returns:
      ``(h_G, windows)``: ``[batch, units]`` and ``[batch, G, 4]`` windows
      (centre x, centre y in 0-based pixels, stride, sigma).
    """
    batch = tf.shape(images)[0]
    h = c = tf.zeros([batch, self.units], self.compute_dtype)
    windows = []
    for _ in range(self.num_glimpses):  # G is small (8): a Python loop traces fine
      glimpse, window = self.reader(images, h)  # placed by h_{t-1}
      h, (_, c) = self.lstm(glimpse, (h, c))
      windows.append(window)
    return h, tf.stack(windows, axis=1)

  def call(self, images, training=None):
    if isinstance(images, (tuple, list)):
      images = images[0]
    h, _ = self.read(self._check_images(images))
    return self.head(h)

  def glimpse_windows(self, images):
    """``(logits [batch, classes], windows [batch, G, 4])`` as NumPy arrays."""
    h, windows = self.read(self._check_images(images))
    return self.head(h).numpy(), windows.numpy()


def save_glimpse_gif(model: DrawClassifier, images, path: str):
  """Writes the glimpse trajectory over ``images`` as a GIF, one frame per glimpse.

  Frame ``t`` shows every image with glimpse ``t``'s ``N x N`` window as a box
  (centre +- N / 2 * stride); the last frame shows the images alone.

  Args:
    model: a :class:`DrawClassifier`.
    images: ``[num, H, W, C]`` in [0, 1].
    path: output ``.gif`` (written atomically).

  Returns:
    ``(logits [num, classes], windows [num, G, 4])`` NumPy arrays.
  """
  images = np.asarray(images, np.float32)
  logits, windows = model.glimpse_windows(images)
  frames = np.repeat(images[:, None], model.num_glimpses, axis=1)
  visualize.save_drawing_gif(frames, path, windows, write_size=model.glimpse_size, frame_ms=400,
                             scale=2)
  return logits, windows
