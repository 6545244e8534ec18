"""Tolerances derived from float32 arithmetic, for tests comparing two trainings.

Two trainings that do the same maths in a different order (one device against
two replicas, a sum over 32 examples against two sums of 16 plus an all-reduce,
another CPU's kernel blocking) differ only by float32 rounding. Reordering a
float32 sum of n terms changes it by at most ``n * u`` relative to the sum of
the magnitudes (Higham, Accuracy and Stability of Numerical Algorithms, section
4.2; ``u = 2**-24``). One training step sums, on the way to each gradient
element, about ``terms`` products: over the batch and the T steps of the unroll
(``batch * T``), and at each of the T steps over the LSTM's ``4 * units``
pre-activations and over the image's ``H * W * C`` pixels (the per-pixel loss,
and the read and write filterbank products over rows and columns that carry it
back to every weight). SGD's step is linear in the gradient and Adam's is
invariant to its scale, so a step changes by at most that relative amount, and
over S steps the changes add: the two final weights differ by at most
``S * terms * u`` of how far the weights moved. (This first-order count has no
growth term; the worst-case ``n * u``, against the typical ``sqrt(n) * u``, is
the slack that covers growth over a few dozen steps.)

A wrong reduction (clipping each replica's share, or summing instead of
averaging the replicas' losses) changes every step by a factor of order one, so
the difference is a sizeable fraction of the movement (measured 0.30 of it, 0.05
absolute, on the strategies test): two orders of magnitude above this bound.

Measured on a 2-core AMD EPYC with AVX-512 and AVX512_BF16, where the old fixed
bound 1e-5 failed:

- tests/test_strategies.py (12 steps, batch 32, T = 4, 16 units, 28x28):
  terms = 128 + 4 * (64 + 784) = 3520, relative bound 2.5e-3, weights moved
  0.166, bound 4.2e-4; measured difference 1.05e-5.
- tests/test_distributed.py (6 steps, batch 8, T = 3, 8 units, 12x10):
  terms = 24 + 3 * (32 + 120) = 480, relative bound 1.7e-4, SGD moved 0.059,
  bound 1.0e-5; measured 2.8e-6.
"""

UNIT_ROUNDOFF = 2.0 ** -24  # float32


def terms_per_step(batch_size: int, num_steps: int, units: int, pixels: int) -> int:
  """Products summed on the way to each gradient element in one training step."""
  return batch_size * num_steps + num_steps * (4 * units + pixels)


def relative_reorder_bound(train_steps: int, batch_size: int, num_steps: int, units: int,
                           pixels: int) -> float:
  """``S * terms * u``: bound on ``max|w_a - w_b| / max|w_final - w_initial|``."""
  return train_steps * terms_per_step(batch_size, num_steps, units, pixels) * UNIT_ROUNDOFF
