"""Mode coverage on the 2-D mixtures (VEEGAN / PacGAN definitions), `diagnose.py --which=modes`,
and the AS-GAN / DAT range clip refused on 2-D data."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial import distance

from tfadvgan import data
from tfadvgan import errors
from tfadvgan.cli import common
from tfadvgan.metrics import mode_coverage
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["train.batch_size = 8", "train.num_steps = 2", "train.log_every_steps = 1",
        "train.checkpoint_every_steps = 2", "train.sample_every_steps = 2", "train.verbose = 0",
        "train.diagnose_every_steps = 0", "build_generator.width = 16",
        "build_discriminator.width = 16", "dataset.num_examples = 256"]


def test_hand_placed_samples_on_the_ring():
  """Distances chosen around the 3-std boundary: the counts are known by construction."""
  centres = data.ring_centres()
  std = 0.02
  unit = np.array([0.6, 0.8])  # a unit vector
  samples = np.array([
      centres[0], centres[0] + 0.01 * unit, centres[0] - 0.05 * unit,  # mode 0: 0, 0.5, 2.5 std
      centres[2] + 2.9 * std * unit,                                   # mode 2: just inside
      centres[5] + 3.1 * std * unit,                                   # mode 5: just outside
      [0.0, 0.0],                                                      # between the modes
  ])
  got = mode_coverage.mode_coverage(samples, centres, std)
  assert got["counts"] == [3, 0, 1, 0, 0, 0, 0, 0]
  assert got["modes_covered"] == 2 and got["num_modes"] == 8
  assert got["high_quality_fraction"] == pytest.approx(4 / 6)
  stricter = mode_coverage.mode_coverage(samples, centres, std, min_count=2)
  assert stricter["modes_covered"] == 1 and stricter["counts"] == got["counts"]
  wider = mode_coverage.mode_coverage(samples, centres, std, num_std=3.2)
  assert wider["modes_covered"] == 3 and wider["high_quality_fraction"] == pytest.approx(5 / 6)


def test_matches_scipy_on_a_random_grid_sample():
  rng = np.random.default_rng(12)
  centres = data.grid_centres()
  std = 0.05
  # Half the samples from 10 of the 25 modes (std 2 sigma, so some fall outside 3 sigma), half
  # uniform over the square.
  modes = rng.choice(10, 400) * 2
  samples = np.concatenate([centres[modes] + 2 * std * rng.standard_normal((400, 2)),
                            rng.uniform(-5, 5, (400, 2))])
  d = distance.cdist(samples, centres)
  nearest = d.argmin(axis=1)
  hq = d.min(axis=1) <= 3 * std
  expected = np.array([np.sum(hq & (nearest == k)) for k in range(25)])
  got = mode_coverage.mode_coverage(samples, centres, std)
  assert got["counts"] == expected.tolist()
  assert got["modes_covered"] == int(np.sum(expected > 0))
  assert got["high_quality_fraction"] == pytest.approx(hq.mean())
  assert 10 <= got["modes_covered"] < 25  # the test data exercise both outcomes


@pytest.mark.parametrize("kwargs, message", [
    (dict(std=0.0), "std must be > 0"),
    (dict(std=0.1, min_count=0), "min_count"),
    (dict(std=0.1, num_std=-1.0), "num_std"),
])
def test_bad_arguments_are_one_clear_error(kwargs, message):
  with pytest.raises(errors.ConfigError, match=message):
    mode_coverage.mode_coverage(np.zeros((3, 2)), data.ring_centres(), **kwargs)
  with pytest.raises(errors.ConfigError, match="do not match"):
    mode_coverage.mode_coverage(np.zeros((3, 3)), data.ring_centres(), 0.1)


def _ring_run(tmp_path, files, params=()):
  model_dir = str(tmp_path / "run")
  common.parse_gin([os.path.join(ROOT, "gin_configs", f) for f in files], TINY + list(params))
  return model_dir, loop.train(model_dir)


def test_diagnose_modes_on_a_ring_run(tmp_path):
  """The JSON's numbers are those of the saved samples (recomputed with SciPy), and the samples
  are the run's G at the seed given."""
  model_dir, gan = _ring_run(tmp_path, ["base/gan_ring.gin"])
  out = tmp_path / "diag"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "diagnose.py"), f"--model_dir={model_dir}",
       f"--out={out}", "--mode_samples=300", "--seed=3", "--num=20", "--mode_num_std=40"],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / "diagnostics_step2.json").read_text())
  assert "modes" in report["which"]  # on by default on a mixture
  modes = report["modes"]
  with np.load(io.BytesIO((out / "mode_samples_step2.npz").read_bytes())) as f:
    samples, centres, std = f["samples"], f["centres"], float(f["std"])
  assert samples.shape == (300, 2) and std == pytest.approx(0.02)
  np.testing.assert_array_equal(centres, data.ring_centres())
  z = tf.random.stateless_normal([300, gan.generator.latent_dim], seed=[3, 11])  # make_fakes' z
  np.testing.assert_allclose(samples, gan.sampler()(z, None, training=False).numpy(), atol=1e-5)
  d = distance.cdist(samples, centres)
  hq = d.min(axis=1) <= 40 * std
  assert modes["counts"] == [int(np.sum(hq & (d.argmin(axis=1) == k))) for k in range(8)]
  assert modes["high_quality_fraction"] == pytest.approx(hq.mean())
  assert modes["num_std"] == 40 and modes["num_samples"] == 300 and modes["dataset"] == "ring"


@pytest.mark.parametrize("config, knob", [("as_gan", "ASGAN.clip"), ("dat", "DAT.clip")])
def test_image_range_clip_on_2d_data_is_refused(tmp_path, config, knob):
  """The [-1, 1] clip would silently squash the ring (radius 2): one clear error instead."""
  with pytest.raises(errors.ConfigError, match=f"{knob} = False"):
    _ring_run(tmp_path, ["base/gan_ring.gin", f"common/{config}.gin"],
              ["build_gan.run_eagerly = True"])
