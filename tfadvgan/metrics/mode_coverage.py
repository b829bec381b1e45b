"""Mode coverage of samples of a 2-D Gaussian mixture (the ring of 8 and the grid of 25).

The definitions are VEEGAN's (Srivastava et al. 2017, Sec. 5.1), which PacGAN (Lin et al. 2018,
Table 1) reuses for the same two mixtures:

- a sample is *high quality* when it lies within ``num_std = 3`` standard deviations of the mode
  centre nearest to it (Euclidean distance ``<= 3 * std``);
- a mode is *covered* ("captured") when it is the nearest mode of at least ``min_count = 1``
  high-quality sample;
- both papers draw 2500 samples (``scripts/diagnose.py --mode_samples``).

``min_count`` > 1 gives the stricter count some later papers use; it is reported in the results
so the two are never confused. Pure NumPy: the samples are already on the host.
"""
import numpy as np

from tfadvgan import errors

VEEGAN_NUM_STD = 3.0


def mode_coverage(samples, centres, std, num_std=VEEGAN_NUM_STD, min_count=1):
  """Modes covered and the high-quality fraction of `samples` ([n, d]) around `centres` ([K, d]).

  Returns a dict: ``num_modes`` K, ``modes_covered`` (int), ``high_quality_fraction`` (float),
  ``counts`` (high-quality samples per mode, list of K ints), ``num_samples``, ``std``,
  ``num_std``, ``min_count`` and ``definition``.
  """
  samples = np.asarray(samples, np.float64)
  centres = np.asarray(centres, np.float64)
  errors.check(samples.ndim == 2 and samples.shape[0] >= 1,
               f"mode_coverage needs samples of shape [n, d] with n >= 1; got {samples.shape}.")
  errors.check(centres.ndim == 2 and centres.shape[1] == samples.shape[1],
               f"mode_coverage: centres of shape {centres.shape} do not match samples of shape "
               f"{samples.shape}.")
  errors.check(np.isfinite(std) and std > 0, f"mode_coverage: std must be > 0; got {std!r}.")
  errors.check(num_std > 0, f"mode_coverage: num_std must be > 0; got {num_std!r}.")
  errors.check(int(min_count) == min_count and min_count >= 1,
               f"mode_coverage: min_count must be an integer >= 1; got {min_count!r}.")
  distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)  # [n, K]
  nearest = np.argmin(distances, axis=1)
  high_quality = distances[np.arange(len(samples)), nearest] <= num_std * std
  counts = np.bincount(nearest[high_quality], minlength=len(centres))
  return {
      "num_modes": int(len(centres)),
      "modes_covered": int(np.sum(counts >= min_count)),
      "high_quality_fraction": float(np.mean(high_quality)),
      "counts": [int(c) for c in counts],
      "num_samples": int(len(samples)),
      "std": float(std), "num_std": float(num_std), "min_count": int(min_count),
      "definition": (f"VEEGAN/PacGAN: high quality = within {num_std:g} std of the nearest mode "
                     f"centre; a mode is covered with >= {int(min_count)} high-quality samples "
                     "nearest to it"),
  }
