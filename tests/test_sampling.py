"""Latent truncation and interpolation against hand formulas; interpolation and class sheets on
a small conditional generator."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tfadvgan import rng
from tfadvgan.errors import ConfigError
from tfadvgan.gans import latents
from tfadvgan.gans import sampling


@pytest.mark.parametrize("t", [0.5, 1.3])
def test_truncation_redraws_only_the_entries_outside(t):
  z = tf.random.stateless_normal([64, 9], seed=[3, rng.SAMPLES_Z]).numpy()
  got = latents.truncate(z, t, seed=3).numpy()
  outside = np.abs(z) > t
  assert 0 < outside.mean() < 1
  assert np.abs(got).max() <= t
  np.testing.assert_array_equal(got[~outside], z[~outside])  # inside: untouched
  # Redrawn entries: the inverse normal CDF of a uniform in [Phi(-t), Phi(t)] (scipy here).
  u = rng.uniform(z.shape, tf.constant([3, rng.TRUNCATION_Z])).numpy().astype(np.float64)
  want = scipy.stats.norm.ppf(scipy.stats.norm.cdf(-t) + u * (2 * scipy.stats.norm.cdf(t) - 1))
  np.testing.assert_allclose(got[outside], want[outside], rtol=1e-5, atol=1e-6)
  assert not np.allclose(got[outside], z[outside])
  with pytest.raises(ConfigError, match="> 0"):
    latents.truncate(z, 0.0, seed=3)


def test_slerp_endpoints_and_norm_against_hand_formula():
  a, b = np.array([1.0, 2.0, -1.0, 0.5]), np.array([-2.0, 0.5, 3.0, 1.0])
  path = latents.interpolate(a, b, 5, "slerp")
  np.testing.assert_allclose(path[0], a, rtol=1e-6)
  np.testing.assert_allclose(path[-1], b, rtol=1e-6)
  omega = np.arccos(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
  for t, p in zip(np.linspace(0, 1, 5), path):
    s0, s1 = np.sin((1 - t) * omega) / np.sin(omega), np.sin(t * omega) / np.sin(omega)
    np.testing.assert_allclose(p, s0 * a + s1 * b, rtol=1e-6)
  # Equal norms: slerp keeps the norm (orthogonal 3e1, 3e2: the midpoint is 3 (e1 + e2) / sqrt 2),
  # lerp shrinks it at the midpoint to 3 / sqrt 2.
  e1, e2 = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
  s = latents.interpolate(e1, e2, 3, "slerp")
  np.testing.assert_allclose(s[1], [3 / np.sqrt(2), 3 / np.sqrt(2), 0.0], rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(latents.interpolate(e1, 2 * e2 / 2, 9), axis=1), 3.0,
                             rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(latents.interpolate(e1, e2, 3, "lerp")[1]),
                             3 / np.sqrt(2), rtol=1e-6)
  with pytest.raises(ConfigError, match="slerp"):
    latents.interpolate(a, b, 5, "cubic")


class TinyG(keras.Model):
  """A conditional generator whose image shows its label and code: pixel k = tanh(z_k / 4 + y)."""

  def __init__(self, num_classes=3, latent_dim=4):
    super().__init__(name="tiny_g")
    self.latent_dim, self.num_classes = latent_dim, num_classes

  def call(self, z, labels=None, training=None):
    x = tf.tanh(z / 4.0 + tf.cast(labels, tf.float32)[:, None] * 0.5)
    return tf.reshape(tf.tile(x, [1, 1]), [-1, 2, 2, 1])


class TinyGAN:
  conditional = True

  def __init__(self):
    self.g = TinyG()

  def sampler(self):
    return self.g


def test_class_sheet_rows_are_classes_with_shared_codes():
  gan = TinyGAN()
  images, labels = sampling.class_sheet(gan, per_class=5, seed=2, truncation=1.0)
  assert images.shape == (15, 2, 2, 1)
  np.testing.assert_array_equal(labels.reshape(3, 5), np.repeat([[0], [1], [2]], 5, axis=1))
  z = latents.truncate(tf.random.stateless_normal([5, 4], seed=[2, rng.SAMPLES_Z]), 1.0, 2)
  for c in range(3):
    want = gan.g(z, tf.fill([5], c)).numpy()
    np.testing.assert_allclose(images[5 * c:5 * c + 5], want, rtol=1e-6)
  with pytest.raises(ConfigError, match="class-conditional"):
    gan.conditional = False
    sampling.class_sheet(gan)


def test_interpolation_sheet_rows_between_seed_codes():
  gan = TinyGAN()
  images, labels, z = sampling.interpolation_sheet(gan, [4, 9, 1], steps=6, method="slerp")
  assert images.shape == (12, 2, 2, 1) and z.shape == (12, 4)
  np.testing.assert_array_equal(labels, [0] * 6 + [1] * 6)  # row r: class r % 3
  first = {s: sampling.generate(gan, 3, seed=s)[0][0] for s in (4, 9, 1)}  # code of each seed
  np.testing.assert_allclose(images[0], first[4], rtol=1e-6)
  np.testing.assert_allclose(z[5], z[6], rtol=1e-6)  # row 0 ends where row 1 starts (seed 9)
  np.testing.assert_allclose(images[11], gan.g(z[11:], tf.constant([1])).numpy()[0], rtol=1e-6)
  _, fixed, _ = sampling.interpolation_sheet(gan, [4, 9], steps=2, label=2)
  np.testing.assert_array_equal(fixed, [2, 2])
  with pytest.raises(ConfigError, match=r"\[0, 3\)"):
    sampling.interpolation_sheet(gan, [4, 9], steps=2, label=3)


def test_sample_cli_names_the_truncation_flag_before_loading_the_run(tmp_path):
  """A bad --truncation is one line that names the flag, with exit 2, before the run is read (the
  run directory does not exist here)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, os.path.join(root, "scripts", "sample.py"),
       f"--model_dir={tmp_path / 'absent'}", "--truncation=-1.5"],
      capture_output=True, text=True, cwd=root, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert errors == ["error: --truncation must be > 0 (the |z| threshold); got -1.5."], proc.stderr
