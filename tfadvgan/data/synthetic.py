"""Synthetic 2-D mixtures of Gaussians: `ring` (8 modes) and `grid` (25 modes).

Each source is a finite set of points (default 100000) drawn once with a seeded numpy generator;
the mode centres and default standard deviations are exposed for mode-coverage metrics.
"""
import numpy as np

from tfadvgan import errors
from tfadvgan.data import registry
from tfadvgan.data import sources

DEFAULT_NUM_POINTS = 100000
RING_MODES = 8
RING_RADIUS = 2.0
GRID_SIDE = 5
GRID_SPACING = 2.0

# Default per-mode standard deviation of each synthetic source.
MODE_STD = {"ring": 0.02, "grid": 0.05}

_SPLIT_STREAM = {"train": 0, "test": 1}


def ring_centres(num_modes=RING_MODES, radius=RING_RADIUS):
  """`[num_modes, 2]` float32 centres evenly spaced on a circle, the first at `(radius, 0)`."""
  angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
  return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def grid_centres(side=GRID_SIDE, spacing=GRID_SPACING):
  """`[side**2, 2]` float32 centres of a square grid centred at 0 (default -4..4 step 2)."""
  ticks = (np.arange(side) - (side - 1) / 2.0) * spacing
  xs, ys = np.meshgrid(ticks, ticks, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


_CENTRES = {"ring": ring_centres, "grid": grid_centres}


def mode_centres(name):
  """Returns the `[K, 2]` mode centres of synthetic source `name` ("ring" or "grid")."""
  return errors.choose("synthetic dataset", name, _CENTRES)()


def sample_mixture(centres, num_points, std, seed=0, stream=0):
  """Draws `num_points` points from an equal-weight isotropic Gaussian mixture.

  Args:
    centres: `[K, 2]` mode centres.
    num_points: Number of points.
    std: Per-mode standard deviation.
    seed: Integer seed.
    stream: Extra integer mixed into the seed (the split), so splits differ.

  Returns:
    `(points float32 [num_points, 2], mode index int64 [num_points])`.
  """
  rng = np.random.default_rng([int(seed), int(stream)])
  modes = rng.integers(len(centres), size=num_points)
  noise = rng.standard_normal((num_points, centres.shape[1]))
  return (centres[modes] + std * noise).astype(np.float32), modes


def _load(name, split, std, num_examples, seed):
  std = MODE_STD[name] if std is None else std
  errors.check(isinstance(std, (int, float)) and std > 0,
               f"dataset.std must be a positive number for {name!r}, got {std!r}.")
  num_examples = DEFAULT_NUM_POINTS if num_examples is None else num_examples
  num_examples = errors.check_int("dataset.num_examples", num_examples, low=1)
  points, _ = sample_mixture(mode_centres(name), num_examples, float(std), seed,
                             _SPLIT_STREAM[split])
  return sources.from_arrays(points, name=name)


_OPTIONS = ("std", "num_examples", "seed")


@registry.register("ring", splits=("train", "test"), options=_OPTIONS)
def load_ring(split, std, num_examples, seed):
  """8 Gaussians (std 0.02) on a circle of radius 2; unlabelled `[2]` points."""
  return _load("ring", split, std, num_examples, seed)


@registry.register("grid", splits=("train", "test"), options=_OPTIONS)
def load_grid(split, std, num_examples, seed):
  """25 Gaussians (std 0.05) on a 5x5 grid at -4..4 step 2; unlabelled `[2]` points."""
  return _load("grid", split, std, num_examples, seed)
