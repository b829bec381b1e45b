"""k-NN manifold metrics: improved precision and recall, density and coverage.

* Precision and recall (Kynkäänniemi et al., Improved precision and recall metric for assessing
  generative models, NeurIPS 2019): each real feature ``x_i`` spans a closed ball of radius
  ``r_i`` = distance to its k-th nearest other real feature; precision is the fraction of fakes
  inside the union of these balls, recall the fraction of reals inside the balls of the fakes.
* Density and coverage (Naeem et al., Reliable fidelity and diversity metrics for generative
  models, ICML 2020): density = ``1/(k M) sum_j #{i: |y_j - x_i| < r_i}`` (how many real balls hold
  each fake, so it can exceed 1); coverage = fraction of reals whose ball holds at least one fake.

The radius is the (k+1)-th smallest distance of a row that includes the point itself (its own
distance, 0, is the first), as in both authors' code (kynkaat/improved-precision-and-recall-metric,
clovaai/generative-evaluation-prdc). Ties follow each paper's code: precision and recall use closed
balls (``<=``), density and coverage open balls (``<``). With open balls a set against itself has
density exactly 1 (each point's ball holds itself and its k - 1 nearer neighbours, not the k-th);
closed balls would give (k + 1) / k.

Memory: distances are computed block by block (``block_size`` rows x ``block_size`` columns, in
float64 from the float32 features), so no [N, M] matrix is ever held; the k+1 smallest distances of
each row are merged across column blocks. Each block's squared distances are rounded to float32
before any comparison, so a pair gives the same number in whichever block (and BLAS tiling) it
falls: the self-consistency results above are then exact.
"""
import gin
import numpy as np

from tfadvgan.errors import check

MANIFOLD_METRICS = ("precision", "recall", "density", "coverage")


def _check_features(x, what, k):
  x = np.asarray(x)
  check(x.ndim == 2, f"{what} must be a 2-D [N, d] array, got shape {x.shape}.")
  check(np.issubdtype(x.dtype, np.number), f"{what} must be numeric, got dtype {x.dtype}.")
  check(x.shape[0] >= k + 1, f"{what} has {x.shape[0]} rows; k-NN with k={k} needs at least "
        f"{k + 1}.")
  x = x.astype(np.float32, copy=False)
  check(np.all(np.isfinite(x)), f"{what} has non-finite values.")
  return x


def _squared_norms(x, block_size):
  return np.concatenate([np.sum(np.square(x[i:i + block_size].astype(np.float64)), axis=1)
                         for i in range(0, len(x), block_size)])


def _squared_distances(a, a_norms, b, b_norms):
  """``|a_i - b_j|^2`` of two float32 row blocks, computed in float64, returned as float32."""
  d = a.astype(np.float64) @ b.astype(np.float64).T
  d *= -2.0
  d += a_norms[:, None]
  d += b_norms[None, :]
  np.maximum(d, 0.0, out=d)
  return d.astype(np.float32)


def _blocks(n, block_size):
  return [slice(i, min(i + block_size, n)) for i in range(0, n, block_size)]


def knn_squared_radii(features, k=3, block_size=1024):
  """Squared distance of each row of ``features`` to its k-th nearest other row, ``[N]`` float32.

  Args:
    features: ``[N, d]`` array, N >= k + 1.
    k: neighbourhood size.
    block_size: rows and columns per distance block.
  """
  x = _check_features(features, "features", k)
  norms = _squared_norms(x, block_size)
  radii = np.empty(len(x), np.float32)
  for rows in _blocks(len(x), block_size):
    best = np.empty((rows.stop - rows.start, 0), np.float32)  # the k+1 smallest seen so far
    for cols in _blocks(len(x), block_size):
      best = np.concatenate(
          [best, _squared_distances(x[rows], norms[rows], x[cols], norms[cols])], axis=1)
      if best.shape[1] > k + 1:
        best = np.partition(best, k, axis=1)[:, :k + 1]
    radii[rows] = best.max(axis=1)
  return radii


def _count_balls(real, fake, real_radii, fake_radii, block_size):
  """One blocked pass over all (real, fake) pairs; returns the per-point tallies."""
  real_norms, fake_norms = _squared_norms(real, block_size), _squared_norms(fake, block_size)
  fake_in_real = np.zeros(len(fake), bool)      # inside some closed real ball (precision)
  fake_balls = np.zeros(len(fake), np.int64)    # number of open real balls holding it (density)
  real_in_fake = np.zeros(len(real), bool)      # inside some closed fake ball (recall)
  real_nearest = np.full(len(real), np.inf, np.float32)  # nearest fake (coverage)
  for rows in _blocks(len(real), block_size):
    r = real_radii[rows][:, None]
    for cols in _blocks(len(fake), block_size):
      d = _squared_distances(real[rows], real_norms[rows], fake[cols], fake_norms[cols])
      fake_in_real[cols] |= np.any(d <= r, axis=0)
      fake_balls[cols] += np.sum(d < r, axis=0)
      if fake_radii is not None:
        real_in_fake[rows] |= np.any(d <= fake_radii[cols][None, :], axis=1)
      real_nearest[rows] = np.minimum(real_nearest[rows], d.min(axis=1))
  return fake_in_real, fake_balls, real_in_fake, real_nearest


@gin.configurable
def manifold_metrics(real_features, fake_features, k=3, block_size=1024,
                     metrics=MANIFOLD_METRICS):
  """Precision, recall, density and coverage of fakes against reals, on classifier features.

  Args:
    real_features: ``[N, d]`` features of real data (e.g. the FID reference activations).
    fake_features: ``[M, d]`` features of generated data.
    k: neighbourhood size (3 in both papers).
    block_size: rows and columns of each distance block; peak extra memory is a few
      ``block_size^2`` float64 arrays.
    metrics: the subset of ``MANIFOLD_METRICS`` to return (recall alone needs the fakes' own
      k-NN radii, an extra M x M pass).

  Returns:
    ``{name: float}`` for ``metrics``, in ``MANIFOLD_METRICS`` order.
  """
  check(isinstance(k, int) and k >= 1, f"manifold_metrics.k must be an integer >= 1; got {k!r}.")
  check(isinstance(block_size, int) and block_size >= 1,
        f"manifold_metrics.block_size must be an integer >= 1; got {block_size!r}.")
  metrics = tuple(metrics)
  check(metrics and set(metrics) <= set(MANIFOLD_METRICS),
        f"metrics must be a non-empty subset of {', '.join(MANIFOLD_METRICS)}; got {metrics!r}.")
  real = _check_features(real_features, "real_features", k)
  fake = _check_features(fake_features, "fake_features", k)
  check(real.shape[1] == fake.shape[1], f"Real and fake features differ in width: "
        f"{real.shape[1]} and {fake.shape[1]}.")
  real_radii = knn_squared_radii(real, k, block_size)
  fake_radii = knn_squared_radii(fake, k, block_size) if "recall" in metrics else None
  fake_in_real, fake_balls, real_in_fake, real_nearest = _count_balls(
      real, fake, real_radii, fake_radii, block_size)
  values = dict(precision=np.mean(fake_in_real), recall=np.mean(real_in_fake),
                density=np.mean(fake_balls) / k, coverage=np.mean(real_nearest < real_radii))
  return {m: float(values[m]) for m in MANIFOLD_METRICS if m in metrics}


__all__ = ["manifold_metrics", "knn_squared_radii", "MANIFOLD_METRICS"]
