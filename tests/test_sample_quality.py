"""FID / IS / KID against independent NumPy-SciPy computations; tf-gan loader; reference cache."""
import json
import os
import shutil
import sys
import types

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from tfadvgan.errors import ConfigError
from tfadvgan.metrics import classifiers
from tfadvgan.metrics import sample_quality as sq
from tfadvgan.metrics import tfgan_eval


# ------------------------------------------------------------------------------------------------
# Independent reference implementations.

def scipy_fid(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  mu1, mu2 = a.mean(0), b.mean(0)
  c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = scipy.linalg.sqrtm(c1 @ c2)
  covmean = np.real(covmean)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * covmean))


def numpy_is(logits, splits):
  logits = np.asarray(logits, np.float64)
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  size = len(p) // splits
  scores = []
  for k in range(splits):
    part = p[k * size:(k + 1) * size]
    py = part.mean(0, keepdims=True)
    kl = np.sum(part * (np.log(part) - np.log(py)), axis=1)
    scores.append(np.exp(kl.mean()))
  return np.mean(scores), np.std(scores)


def numpy_mmd2_unbiased(x, y):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  d = x.shape[1]
  k = lambda a, b: (a @ b.T / d + 1) ** 3
  kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
  m, n = len(x), len(y)
  return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
          - 2 * kxy.mean())


# ------------------------------------------------------------------------------------------------
# FID.

def test_fid_matches_scipy_and_analytic_value():
  rng = np.random.default_rng(0)
  d, n, m, s = 8, 20000, 0.5, 1.5
  a = rng.normal(size=(n, d))
  b = rng.normal(m, s, size=(n, d))
  ours = sq.fid_from_activations(a, b)
  assert isinstance(ours, float)
  assert ours == pytest.approx(scipy_fid(a, b), rel=1e-3)
  analytic = d * (m ** 2 + (1 - s) ** 2)  # |mu1-mu2|^2 + tr(I + s^2 I - 2 s I)
  assert ours == pytest.approx(analytic, rel=0.05)


def test_fid_accepts_tensors_and_float32_and_is_zero_for_identical_sets():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(500, 16)).astype(np.float32)
  b = rng.normal(size=(400, 16)).astype(np.float32)
  assert sq.fid_from_activations(tf.constant(a), b) == pytest.approx(scipy_fid(a, b), rel=1e-3)
  assert abs(sq.fid_from_activations(a, a)) < 1e-6


def test_fid_rejects_bad_shapes():
  with pytest.raises(ConfigError, match="same width"):
    sq.fid_from_activations(np.zeros((10, 3)), np.zeros((10, 4)))
  with pytest.raises(ConfigError, match="2-D"):
    sq.fid_from_activations(np.zeros((10,)), np.zeros((10, 4)))


# ------------------------------------------------------------------------------------------------
# Inception Score.

def test_inception_score_matches_numpy_per_split():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(1000, 10)) * 3.0
  mean, std = sq.inception_score_from_logits(logits, num_splits=10)
  ref_mean, ref_std = numpy_is(logits, 10)
  assert isinstance(mean, float) and isinstance(std, float)
  assert mean == pytest.approx(ref_mean, rel=1e-9)
  assert std == pytest.approx(ref_std, rel=1e-6)
  assert std > 0


def test_inception_score_drops_the_remainder_and_handles_extremes():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(1007, 10)).astype(np.float32)
  assert sq.inception_score_from_logits(logits, 10) == pytest.approx(
      sq.inception_score_from_logits(logits[:1000], 10), rel=1e-9)
  # Confident and uniformly spread predictions: IS = number of classes; constant ones: IS = 1.
  confident = np.tile(np.eye(5) * 50.0, (20, 1))
  assert sq.inception_score_from_logits(confident, 1)[0] == pytest.approx(5.0, rel=1e-6)
  assert sq.inception_score_from_logits(np.zeros((50, 5)), 1) == pytest.approx((1.0, 0.0))
  with pytest.raises(ConfigError, match="num_splits"):
    sq.inception_score_from_logits(logits[:5], 10)


# ------------------------------------------------------------------------------------------------
# KID.

def test_kid_single_block_matches_numpy_unbiased_mmd():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(300, 16))
  y = rng.normal(0.3, 1.2, size=(250, 16))
  mean, std = sq.kid_from_activations(x, y)
  assert mean == pytest.approx(numpy_mmd2_unbiased(x, y), rel=1e-9)
  assert np.isnan(std)  # One block: tf-gan reports NaN for the standard error.


def test_kid_blocks_match_numpy_block_estimator():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(300, 8)).astype(np.float32)
  y = rng.normal(0.2, 1.0, size=(300, 8)).astype(np.float32)
  mean, std = sq.kid_from_activations(x, y, max_block_size=100)
  blocks = [numpy_mmd2_unbiased(x[i:i + 100], y[i:i + 100]) for i in range(0, 300, 100)]
  assert mean == pytest.approx(np.mean(blocks), rel=1e-6)
  assert std == pytest.approx(np.sqrt(np.var(blocks, ddof=1) / 3), rel=1e-5)
  with pytest.raises(ConfigError, match="per block"):
    sq.kid_from_activations(x[:3], y, max_block_size=100)


# ------------------------------------------------------------------------------------------------
# tf-gan loader.

def test_loader_returns_cached_eval_without_estimator_or_train():
  ev = tfgan_eval.load_tfgan_eval()
  assert tfgan_eval.load_tfgan_eval() is ev
  for name in tfgan_eval.REQUIRED_FUNCTIONS:
    assert callable(getattr(ev, name))
  if not hasattr(tf, "estimator"):
    assert "tensorflow_gan.python.train" not in sys.modules
    assert "tensorflow_gan.python.estimator" not in sys.modules
  # Our Inception constants are tf-gan's.
  assert classifiers.INCEPTION_TFHUB == ev.INCEPTION_TFHUB
  assert classifiers.INCEPTION_OUTPUT == ev.INCEPTION_OUTPUT
  assert classifiers.INCEPTION_FINAL_POOL == ev.INCEPTION_FINAL_POOL
  assert classifiers.INCEPTION_DEFAULT_IMAGE_SIZE == ev.INCEPTION_DEFAULT_IMAGE_SIZE


def test_loader_reports_a_changed_layout(tmp_path):
  (tmp_path / "python").mkdir()
  with pytest.raises(ConfigError, match=r"layout changed.*2\.1\.0"):
    tfgan_eval.load_tfgan_eval(tmp_path)
  with pytest.raises(ConfigError, match="classifier_score_from_logits"):
    tfgan_eval._validate(types.SimpleNamespace(
        frechet_classifier_distance_from_activations=len,
        kernel_classifier_distance_and_std_from_activations=len))


def test_loader_reports_missing_functions_and_leaves_sys_modules_alone(tmp_path):
  tfgan_eval.load_tfgan_eval()
  before = {k: v for k, v in sys.modules.items() if k.startswith("tensorflow_gan")}
  copy = tmp_path / "tensorflow_gan"
  shutil.copytree(tfgan_eval._package_dir(), copy,
                  ignore=shutil.ignore_patterns("__pycache__", "*_test.py", "examples"))
  metrics_file = copy / "python" / "eval" / "classifier_metrics.py"
  original = metrics_file.read_text()
  # A release that renamed one of the functions we use.
  metrics_file.write_text(original.replace(
      "'frechet_classifier_distance_from_activations',", "'renamed_fcd',").replace(
          "def frechet_classifier_distance_from_activations(", "def renamed_fcd("))
  with pytest.raises(ConfigError,
                     match=r"lacks frechet_classifier_distance_from_activations.*2\.1\.0"):
    tfgan_eval.load_tfgan_eval(copy)
  # A release whose eval modules no longer import together.
  metrics_file.write_text("__all__ = []\n")
  with pytest.raises(ConfigError, match=r"layout changed \(importing .*Cause: AttributeError"):
    tfgan_eval.load_tfgan_eval(copy)
  assert {k: v for k, v in sys.modules.items() if k.startswith("tensorflow_gan")} == before
  # Loading an intact copy in isolation works and restores sys.modules.
  metrics_file.write_text(original)
  ev = tfgan_eval.load_tfgan_eval(copy)
  assert ev.__file__.startswith(str(copy))
  after = {k: v for k, v in sys.modules.items() if k.startswith("tensorflow_gan")}
  assert after == before


# ------------------------------------------------------------------------------------------------
# Reference cache.

def _key(**overrides):
  fields = dict(dataset="fashion_mnist", split="test", classifier="fmnist_cnn", resolution=28,
                n=50)
  fields.update(overrides)
  return sq.make_reference_key(**fields)


class _Counter:

  def __init__(self, n=50, d=6):
    self.calls = 0
    self.n, self.d = n, d

  def __call__(self):
    self.calls += 1
    return np.random.default_rng(self.calls).normal(size=(self.n, self.d)).astype(np.float32)


def test_reference_cache_reuses_and_recomputes_on_any_key_change(tmp_path):
  compute = _Counter()
  first = sq.load_or_compute_reference(str(tmp_path), _key(), compute)
  again = sq.load_or_compute_reference(str(tmp_path), _key(), compute)
  assert compute.calls == 1
  np.testing.assert_array_equal(first.activations, again.activations)
  np.testing.assert_allclose(again.mu, first.activations.astype(np.float64).mean(0))
  np.testing.assert_allclose(again.sigma, np.cov(first.activations.astype(np.float64),
                                                 rowvar=False))
  changes = [dict(dataset="mnist"), dict(split="train"), dict(classifier="inception"),
             dict(resolution=32), dict(n=60)]
  for i, change in enumerate(changes, start=2):
    compute.n = change.get("n", 50)
    sq.load_or_compute_reference(str(tmp_path), _key(**change), compute)
    assert compute.calls == i, change
    compute.n = 50
  sq.load_or_compute_reference(str(tmp_path), _key(), compute)  # Still cached.
  assert compute.calls == len(changes) + 1
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp_")]


def test_reference_cache_recomputes_corrupt_or_foreign_files(tmp_path):
  compute = _Counter()
  path = sq.reference_path(str(tmp_path), _key())
  sq.load_or_compute_reference(str(tmp_path), _key(), compute)
  with open(path, "wb") as f:
    f.write(b"not an npz file")
  stats = sq.load_or_compute_reference(str(tmp_path), _key(), compute)
  assert compute.calls == 2 and stats.activations.shape == (50, 6)
  # Truncated file.
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])
  sq.load_or_compute_reference(str(tmp_path), _key(), compute)
  assert compute.calls == 3
  # A valid file whose stored key differs (e.g. copied by hand) is not trusted.
  sq.ActivationStats(np.ones((50, 6)) * np.arange(50)[:, None], _key(split="train")).save(path)
  sq.load_or_compute_reference(str(tmp_path), _key(), compute)
  assert compute.calls == 4
  with pytest.raises(ConfigError, match="Cannot read"):
    with open(path, "wb") as f:
      f.write(b"junk")
    sq.ActivationStats.load(path)


def test_reference_key_and_compute_validation(tmp_path):
  with pytest.raises(ConfigError, match="lacks resolution"):
    sq.load_or_compute_reference(str(tmp_path), dict(dataset="a", split="b", classifier="c", n=1),
                                 _Counter())
  with pytest.raises(ConfigError, match="n=50"):
    sq.load_or_compute_reference(str(tmp_path), _key(), _Counter(n=40))
  # Tuples and lists give the same key; the key is stored inside the file as JSON.
  assert _key(resolution=(28, 28)) == _key(resolution=[28, 28])
  stats = sq.load_or_compute_reference(str(tmp_path), _key(resolution=(28, 28)), _Counter())
  with np.load(sq.reference_path(str(tmp_path), stats.key), allow_pickle=False) as data:
    assert json.loads(str(data["key"]))["resolution"] == [28, 28]
    assert data["activations"].dtype == np.float32
