"""Precision / recall / density / coverage against a plain NumPy implementation (full distance
matrices, as the authors' code), closed-form cases, and blocked == unblocked."""

import numpy as np
import pytest

from tfadvgan.errors import ConfigError
from tfadvgan.metrics import manifold


def numpy_prdc(real, fake, k):
  """The papers' definitions on full Euclidean distance matrices (direct differences)."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)

  def dist(a, b):
    return np.sqrt(np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1))

  real_r = np.sort(dist(real, real), axis=1)[:, k]  # index 0 is the point itself
  fake_r = np.sort(dist(fake, fake), axis=1)[:, k]
  d = dist(real, fake)  # [N real, M fake]
  return dict(
      precision=np.mean(np.any(d <= real_r[:, None], axis=0)),  # closed balls (Kynkäänniemi)
      recall=np.mean(np.any(d <= fake_r[None, :], axis=1)),
      density=np.mean(np.sum(d < real_r[:, None], axis=0)) / k,  # open balls (Naeem)
      coverage=np.mean(d.min(axis=1) < real_r))


def _sets(seed, n=37, m=29, d=5):
  """Reals and fakes that overlap partly: fakes shifted and squeezed, plus a far cluster."""
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(n, d)) * np.array([1.0, 2.0, 0.5, 1.5, 0.7])[:d]
  fake = rng.normal(size=(m, d)) * 0.6 + 0.8
  fake[:5] += 6.0  # a few fakes off the real manifold
  return real.astype(np.float32), fake.astype(np.float32)


@pytest.mark.parametrize("seed, k", [(0, 3), (1, 3), (2, 1), (3, 5)])
def test_matches_numpy_full_matrix(seed, k):
  real, fake = _sets(seed)
  got = manifold.manifold_metrics(real, fake, k=k, block_size=8)
  want = numpy_prdc(real, fake, k)
  assert set(got) == set(manifold.MANIFOLD_METRICS)
  for name in manifold.MANIFOLD_METRICS:
    assert got[name] == pytest.approx(want[name], abs=1e-12), name
  # Non-degenerate: every value strictly between its extremes, and precision != recall.
  assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1 and 0 < got["coverage"] < 1
  assert got["precision"] != got["recall"]


def test_radii_are_the_kth_other_neighbour():
  x = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]], np.float32)
  # Distances from 3: 3, 2, 4, 12 -> its 2nd nearest other point is at 3; from 7: 7, 6, 4, 8 -> 6.
  np.testing.assert_array_equal(manifold.knn_squared_radii(x, k=2, block_size=2),
                                np.array([3, 2, 3, 6, 12], np.float32) ** 2)


def test_ties_closed_balls_for_precision_open_for_density_and_coverage():
  real = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]], np.float32)  # k=2 radii 3, 2, 3, 6, 12
  fake = np.array([[-3.0], [20.0], [30.0], [40.0]], np.float32)
  # -3 lies exactly on the ball of 0 (radius 3) and in no other: inside for precision, outside
  # for density; 20 is inside the ball of 15 only; 30 and 40 are outside every ball. Real 0's
  # nearest fake is exactly at its radius (not covered); 15's is at 5 < 12 (covered).
  got = manifold.manifold_metrics(real, fake, k=2, block_size=3)
  assert got == dict(precision=0.5, recall=1.0, density=1 / 8, coverage=0.2)
  assert got == numpy_prdc(real, fake, 2)


@pytest.mark.parametrize("k", [1, 3])
def test_a_set_against_itself(k):
  real, _ = _sets(4)
  got = manifold.manifold_metrics(real, real.copy(), k=k, block_size=16)
  # Open balls: each point's ball holds itself and its k - 1 nearer neighbours: density is 1.
  assert got == dict(precision=1.0, recall=1.0, density=1.0, coverage=1.0)


def test_disjoint_far_apart_sets():
  real, fake = _sets(5)
  got = manifold.manifold_metrics(real, fake + 1000.0, k=3, block_size=16)
  assert got == dict(precision=0.0, recall=0.0, density=0.0, coverage=0.0)


def test_blocked_equals_unblocked():
  real, fake = _sets(6, n=53, m=41, d=4)
  whole = manifold.manifold_metrics(real, fake, k=3, block_size=1000)
  for block_size in (1, 4, 7, 16, 53):
    assert manifold.manifold_metrics(real, fake, k=3, block_size=block_size) == whole
    np.testing.assert_array_equal(manifold.knn_squared_radii(real, 3, block_size),
                                  manifold.knn_squared_radii(real, 3, 1000))


def test_subset_of_metrics_and_errors():
  real, fake = _sets(7)
  full = manifold.manifold_metrics(real, fake)
  part = manifold.manifold_metrics(real, fake, metrics=("coverage", "density"))
  assert part == dict(density=full["density"], coverage=full["coverage"])
  with pytest.raises(ConfigError, match="at least 4"):
    manifold.manifold_metrics(real[:3], fake)
  with pytest.raises(ConfigError, match="width"):
    manifold.manifold_metrics(real, fake[:, :3])
  with pytest.raises(ConfigError, match="subset"):
    manifold.manifold_metrics(real, fake, metrics=("fid",))
