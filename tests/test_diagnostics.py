"""tfadvgan.metrics.diagnostics on discriminators with known answers, and the diagnose CLI."""
import json
import math
import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.cli import common
from tfadvgan.metrics import diagnostics as diag
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (4, 4, 2)
BIAS = 0.1
N = 50


def _linear_d_weights_and_inputs():
  """The fixed linear D's weights and 50 inputs: constants (read-only), drawn once from their own
  generator; a test that needs more random data makes its own generator."""
  rng = np.random.default_rng(0)
  w = rng.normal(size=SHAPE).astype(np.float32)
  w[0, :, 0] = 0.0  # some exactly-zero input weights (zero gradient entries)
  w[1, 2, :] = 0.0  # a pixel with zero weight in both channels
  x = rng.uniform(-0.5, 0.5, (N,) + SHAPE).astype(np.float32)
  w.setflags(write=False)
  x.setflags(write=False)
  return w, x


W, X = _linear_d_weights_and_inputs()
W_L1 = float(np.sum(np.abs(W.astype(np.float64))))


def linear_d(w=W, b=BIAS):
  """D(x) = <w, x> + b, as a plain function returning the discriminator dict."""
  wt = tf.constant(w)

  def d_fn(x, labels=None):
    del labels
    return {"logits": tf.reduce_sum(x * wt, axis=[1, 2, 3]) + b}

  return d_fn


def np_logits(x, w=W, b=BIAS):
  return np.sum(x.astype(np.float64) * w, axis=(1, 2, 3)) + b


def test_d_accuracy_fgsm_and_pgd_on_linear_d_match_numpy():
  eps = [0.0, 0.01, 0.03, 0.05]
  # Keep examples off every decision boundary, so exact comparisons are safe.
  t = np_logits(X)
  x = X[np.all([np.abs(np.abs(t) - e * W_L1) > 1e-3 for e in eps], axis=0)]
  assert len(x) >= 40
  t = np_logits(x)
  # FGSM moves a real's logit by exactly -eps * ||w||_1 (unclipped): a real stays correct iff
  # t > eps * ||w||_1; a fake (logit pushed up) iff t < -eps * ||w||_1.
  want_real = {e: float(np.mean(t - e * W_L1 > 0)) for e in eps}
  want_fake = {e: float(np.mean(t + e * W_L1 < 0)) for e in eps}
  d = linear_d()
  fgsm_real = diag.d_accuracy(d, x, attack="fgsm", epsilons=eps, batch_size=16)  # padded batch
  assert fgsm_real == want_real
  assert diag.d_accuracy(d, x, attack="fgsm", epsilons=eps, real=False) == want_fake
  # On a linear D, L-inf PGD reaches the same corner of the ball as FGSM.
  assert diag.d_accuracy(d, x, attack="pgd", epsilons=eps, pgd_steps=5, batch_size=32) == want_real
  assert diag.d_accuracy(d, x, attack="pgd", epsilons=eps, real=False,
                         attack_loss="logit") == want_fake
  assert diag.d_accuracy(d, tf.constant(x), attack="none", epsilons=[0.05]) == {
      0.05: want_real[0.0]}
  assert want_real[0.05] < want_real[0.0]  # the test is not vacuous
  with pytest.raises(errors.ConfigError, match="fgsm"):
    diag.d_accuracy(d, X, attack="cw")


def test_classifier_accuracy_under_pgd_on_linear_two_class_softmax():
  # logits = x W + b with two classes: the cross-entropy gradient's sign is -sign(w_y - w_other)
  # everywhere, so PGD reaches x - eps * sign(dw) and an example survives iff its margin
  # dw . x + db exceeds eps * ||dw||_1.
  d = int(np.prod(SHAPE))
  rng = np.random.default_rng(1)
  wc = rng.normal(size=(d, 2)).astype(np.float32)
  bc = np.array([0.2, -0.1], np.float32)
  y = rng.integers(0, 2, N).astype(np.int32)

  def class_logits_fn(x, labels=None):
    del labels
    return tf.reshape(x, [-1, d]) @ tf.constant(wc) + tf.constant(bc)

  dw = (wc[:, 1] - wc[:, 0]).astype(np.float64)
  db = float(bc[1] - bc[0])
  margin_of = lambda x, y: np.where(y == 1, 1.0, -1.0) * (x.reshape(len(x), d) @ dw + db)
  eps = diag.ROBGAN_EPSILONS
  margin = margin_of(X, y)
  keep = np.all([np.abs(margin - e * np.sum(np.abs(dw))) > 1e-3 for e in eps], axis=0)
  x, y = X[keep], y[keep]  # no example on a flip boundary
  assert len(x) >= 40
  margin = margin_of(x, y)
  want = {e: float(np.mean(margin - e * np.sum(np.abs(dw)) > 0)) for e in eps}
  got = diag.classifier_accuracy_under_pgd(class_logits_fn, x, y, batch_size=20)
  assert got == want
  assert want[0.08] < want[0.0]
  # A discriminator dict works too; one without class_logits gets a clear error.
  as_dict = lambda x, labels=None: {"logits": x[:, 0, 0, 0], "class_logits": class_logits_fn(x)}
  assert diag.classifier_accuracy_under_pgd(as_dict, x, y, epsilons=[0.04]) == {0.04: want[0.04]}
  with pytest.raises(errors.ConfigError, match="auxiliary-classifier"):
    diag.classifier_accuracy_under_pgd(linear_d(), x, y, epsilons=[0.02])


def test_dat_first_order_on_linear_and_curved_discriminators():
  """Linear D: the expansion is exact, and a sign step crosses the target m exactly when
  |D(x) - m| < eps * ||w||_1 (hand count). A D with curvature (the logit squared) departs from it."""
  eps, m = 0.01, float(np.median(np_logits(X)))
  got = diag.dat_first_order(linear_d(), X, m, epsilon=eps, clip=False, batch_size=16)
  assert got["relative_error_median"] < 1e-4 and got["sign_agreement"] == 1.0
  t = np_logits(X)
  want_cross = np.mean((np.abs(t - m) < eps * W_L1) & (t != m))
  assert 0 < want_cross < 1  # the data exercise both outcomes
  assert got["overshoot_fraction"] == pytest.approx(want_cross)

  def squared(x, labels=None):
    return {"logits": linear_d()(x, labels)["logits"] ** 2}
  curved = diag.dat_first_order(squared, X, 0.0, epsilon=0.2, clip=False, batch_size=16)
  assert curved["relative_error_median"] > 1e-3  # 2 t (w . delta) misses the (w . delta)^2 term


def test_local_lipschitz_is_the_cross_entropy_gradient_norm():
  """Softmax regression: grad_x CE = W (softmax(x W + b) - onehot(y)), per example."""
  d = int(np.prod(SHAPE))
  rng = np.random.default_rng(6)
  wc = rng.normal(size=(d, 3)).astype(np.float32)
  bc = rng.normal(size=3).astype(np.float32)
  y = rng.integers(0, 3, N).astype(np.int32)

  def class_logits_fn(x, labels=None):
    del labels
    return tf.reshape(x, [-1, d]) @ tf.constant(wc) + tf.constant(bc)

  logits_np = X.reshape(N, d).astype(np.float64) @ wc + bc
  p = np.exp(logits_np - logits_np.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  want = np.linalg.norm((p - np.eye(3)[y]) @ wc.T.astype(np.float64), axis=1)
  got = diag.local_lipschitz(class_logits_fn, X, y, batch_size=16)  # 50 = 3 x 16 + a padded 2
  np.testing.assert_allclose(got["per_example"], want, rtol=1e-4)
  assert got["mean"] == pytest.approx(want.mean(), rel=1e-4)
  assert got["max"] == pytest.approx(want.max(), rel=1e-4)


def test_input_gradient_stats_on_linear_d():
  stats = diag.input_gradient_stats(linear_d(), X, bins=20, batch_size=16)
  np.testing.assert_allclose(stats["l1"], W_L1, rtol=1e-6)
  np.testing.assert_allclose(stats["l1_std"], 0.0, atol=1e-5)
  np.testing.assert_allclose(stats["l2"], np.sqrt(np.sum(W.astype(np.float64) ** 2)), rtol=1e-6)
  assert stats["sparsity"] == pytest.approx(np.mean(W == 0))
  m = np.max(np.abs(W))
  counts, edges = np.histogram(np.tile(W.ravel().astype(np.float64), N), bins=20, range=(-m, m))
  np.testing.assert_array_equal(stats["histogram"]["counts"], counts)
  np.testing.assert_allclose(stats["histogram"]["edges"], edges, rtol=1e-6)
  assert stats["histogram"]["counts"].sum() == N * W.size


def test_gradient_grid_shape_dtype_and_content():
  grid = diag.gradient_grid(linear_d(), X[:6])
  # 6 maps of 4x4 in 3 columns x 2 rows with 2-pixel padding, one channel.
  assert grid.shape == (2 * (4 + 2) + 2, 3 * (4 + 2) + 2, 1) and grid.dtype == np.uint8
  maps = diag.gradient_maps(np.broadcast_to(W, (6,) + SHAPE))
  assert maps.shape == (6, 4, 4) and maps.max() == pytest.approx(1.0)
  cell = grid[2:6, 2:6, 0]  # the first map
  assert cell[1, 2] == 0  # the pixel whose weights are zero in both channels is black
  assert cell.max() == 255
  img = diag.histogram_image(np.array([0, 5, 100]), height=20, bar_width=3)
  assert img.shape == (20, 3 * 4 + 1, 1) and img.dtype == np.uint8
  assert img[0, 9, 0] == 0 and img[0, 1, 0] == 255 and img[-1, 1, 0] == 128  # empty bin
  assert (img[:, 5, 0] == 0).sum() == round(np.log1p(5) / np.log1p(100) * 20)


def test_confidence_and_wasserstein_on_linear_d():
  eps = 0.02
  got = diag.confidence_real_vs_adversarial(linear_d(), X, eps, batch_size=32)
  t = np_logits(X)
  sig = lambda v: 1.0 / (1.0 + np.exp(-v))
  np.testing.assert_allclose(got["real"], np.mean(sig(t)), rtol=1e-5)
  np.testing.assert_allclose(got["adversarial"], np.mean(sig(t - eps * W_L1)), rtol=1e-5)
  fake = np.random.default_rng(3).uniform(-0.5, 0.5, (30,) + SHAPE).astype(np.float32)
  w = diag.wasserstein_estimate(linear_d(), X, fake, batch_size=7)
  np.testing.assert_allclose(w, np.mean(t) - np.mean(np_logits(fake)), atol=1e-5)


def _inputs_with_logits(t, rng):
  """Inputs whose linear-D logits are `t` (up to float32 rounding): random points moved along
  sign(W), which changes the logit by exactly ||W||_1 per unit."""
  x = rng.uniform(-0.4, 0.4, (len(t),) + SHAPE)
  x -= ((np_logits(x) - t) / W_L1)[:, None, None, None] * np.sign(W)
  return x.astype(np.float32)


def test_repeated_diagnostics_reuse_their_compiled_functions():
  """A DAT run computes xi every `train.diagnose_every_steps`: with the same discriminator, each
  compiled piece is traced once, whatever the data (new arrays of the same shape)."""
  from tfadvgan import models  # pylint: disable=g-import-not-at-top
  gan = type("G", (), {})()
  gan.conditional = False
  gan.discriminator = models.build_discriminator(input_shape=(2,), arch="mlp", width=8)
  d_fn = diag.discriminator_fn(gan)
  assert diag.discriminator_fn(gan) is d_fn and diag.discriminator_fn(gan, training=True) is not d_fn
  rng = np.random.default_rng(8)
  first = None
  for _ in range(3):
    real, fake = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    diag.dat_attack_success(d_fn, real, fake, max_iters=3, clip=False, batch_size=4)
    diag.input_gradients(d_fn, real, batch_size=4)
    first = first or dict(d_fn._tfadvgan_compiled)  # pylint: disable=protected-access
  compiled = d_fn._tfadvgan_compiled  # pylint: disable=protected-access
  assert len(compiled) == 4, sorted(compiled)  # logits, the two attacks, input gradients
  assert all(compiled[k] is first[k] for k in first)  # the same functions, not rebuilt ones
  assert [f.experimental_get_tracing_count() for f in compiled.values()] == [1, 1, 1, 1]
  diag.dat_attack_success(d_fn, real, fake, max_iters=4, clip=False, batch_size=4)
  assert len(compiled) == 6  # other settings: other functions, not stale ones


@pytest.mark.parametrize("value", ["logit", "loss"])
def test_dat_attack_success_counts_match_the_closed_form(value):
  # Sign steps of size s move a linear D by a = s * ||w||_1 towards the target; with a <= 2 tol
  # there is no overshoot, so an example at distance g needs ceil((g - tol) / a) steps (0 if
  # g <= tol). With loss="wasserstein", g1(t) = t and g2(t) = -t: the same counts.
  tol, max_iters = 0.25, 8
  a = 0.4
  s = a / W_L1
  # Constructed so that no count sits on a rounding boundary: the logits of each set come in pairs
  # mean +- a * (i + u), i in 0..7, |u| <= 0.2, so both targets (the other set's mean) are exact,
  # and with mean_real - mean_fake = tol + 4.5 a every (g - tol) / a lies >= 0.05 from an integer.
  rng = np.random.default_rng(4)
  mean_real, mean_fake = 1.05, 1.05 - (tol + 4.5 * a)

  def pairs(mean, n_pairs):
    offsets = a * (rng.permutation(n_pairs) % 8 + rng.uniform(-0.2, 0.2, n_pairs))
    return np.concatenate([mean + offsets, mean - offsets])

  real = _inputs_with_logits(pairs(mean_real, 25), rng)
  fake = _inputs_with_logits(pairs(mean_fake, 20), rng)
  assert np.abs(np.concatenate([real, fake])).max() + max_iters * s < 1.0  # the clip never acts
  t_r, t_f = np_logits(real), np_logits(fake)

  def expected(t, target):
    gap = np.abs(t - target)
    ratio = (gap - tol) / a
    assert np.min(np.abs(ratio - np.rint(ratio))) > 0.04  # holds by construction
    return np.where(gap <= tol, 0, np.ceil(ratio)).astype(int)

  n_f = expected(t_f, np.mean(t_r))
  n_r = expected(t_r, np.mean(t_f))
  for n in (n_f, n_r):  # failures, zero-step and in-between successes all occur
    assert (n > max_iters).any() and (n == 0).any() and ((n > 0) & (n <= max_iters)).any()
  got = diag.dat_attack_success(linear_d(), real, fake, loss="wasserstein", tolerance=tol,
                                max_iters=max_iters, step_size=s, value=value, batch_size=16,
                                return_per_example=True)
  for n, key in ((n_f, "fake"), (n_r, "real")):
    want_steps = np.where(n <= max_iters, n, -1)
    np.testing.assert_array_equal(got[f"steps_{key}"], want_steps)
    assert got[f"xi_{key}"] == pytest.approx(np.mean(np.minimum(n, max_iters)))
    assert got[f"fail_{key}"] == pytest.approx(np.mean(n > max_iters))
    ok = n <= max_iters
    want_ok = np.mean(n[ok]) if ok.any() else math.nan
    np.testing.assert_allclose(got[f"xi_{key}_successful"], want_ok)
  sign = 1.0 if value == "logit" else -1.0  # g2(t) = -t for the fakes' target with "loss"
  np.testing.assert_allclose(got["target_fake"], sign * np.mean(t_r), atol=1e-5)


def _tiny_gan_namespace():
  """A GAN-like object: linear D, a generator producing constant-ish images."""

  class G:
    latent_dim = 3
    num_classes = 0

    def __call__(self, z, labels=None, training=False):
      del labels, training
      return tf.tanh(tf.reshape(tf.tile(z[:, :1], [1, int(np.prod(SHAPE))]), (-1,) + SHAPE))

  class Gan:
    conditional = False
    discriminator = staticmethod(lambda x, labels=None, training=False: linear_d()(x))
    generator = G()

    def sampler(self):
      return self.generator

  return Gan()


def test_batch_diagnostics_values_and_no_retracing():
  gan = _tiny_gan_namespace()
  out = diag.batch_diagnostics(gan, X[:16], epsilon=0.02)
  assert set(out) == set(diag.BATCH_KEYS)
  t = np_logits(X[:16])
  assert out["d_acc_real"] == pytest.approx(np.mean(t > 0))
  assert out["d_acc_real_fgsm"] == pytest.approx(np.mean(t - 0.02 * W_L1 > 0))
  assert out["grad_l1"] == pytest.approx(W_L1, rel=1e-5)
  assert out["grad_sparsity"] == pytest.approx(np.mean(W == 0))
  assert out["conf_real_adv"] < out["conf_real"]
  cached = diag.compiled_batch_diagnostics(gan)
  assert cached.tracing_count == 1
  diag.batch_diagnostics(gan, tf.constant(X[16:40]), epsilon=0.01, seed=3)  # other size / eps
  assert cached.tracing_count == 1


# ------------------------------------------------------------------------ a real run + the CLI
TINY = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
        "train.num_steps = 2", "train.log_every_steps = 1", "train.checkpoint_every_steps = 1",
        "train.sample_every_steps = 2", "make_train_dataset.shuffle_buffer = 16",
        "train.verbose = 0", "build_gan.run_eagerly = True"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("diag")
  rng = np.random.default_rng(0)
  data = str(tmp / "data.npz")
  np.savez(data, images=rng.integers(0, 256, (24, 32, 32, 1)).astype(np.uint8),
           labels=(np.arange(24) % 10).astype(np.int64))
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin")],
                   TINY + ["dataset.source = 'npz'", f"dataset.path = '{data}'"])
  model_dir = str(tmp / "run")
  gan = loop.train(model_dir)
  gin.clear_config()
  return model_dir, gan, data


def test_batch_diagnostics_on_a_trained_gan(run_dir):
  _, gan, _ = run_dir
  batch = np.random.default_rng(1).uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32)
  first = diag.batch_diagnostics(gan, batch)
  assert set(first) == set(diag.BATCH_KEYS) and all(np.isfinite(v) for v in first.values())
  second = diag.batch_diagnostics(gan, batch, seed=5)
  assert diag.compiled_batch_diagnostics(gan).tracing_count == 1
  assert second["d_real_logit"] == first["d_real_logit"]  # inference mode: deterministic


def _cli(args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "diagnose.py")] + args,
                        capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_diagnose_cli_end_to_end(run_dir, tmp_path):
  model_dir, _, _ = run_dir
  out = tmp_path / "diag"
  proc = _cli([f"--model_dir={model_dir}", "--num=10", "--split=train", f"--out={out}",
               "--epsilons=0,0.00392", "--dat_max_iters=3", "--pgd_steps=2", "--batch_size=4"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / "diagnostics_step2.json").read_text())
  assert report["step"] == 2 and report["num"] == 10 and report["split"] == "train"
  assert report["which"] == ["accuracy", "pgd_accuracy", "dat", "gradients", "confidence",
                             "wdist"]  # no class_pgd on a plain head
  for key in ("accuracy", "pgd_accuracy"):
    assert set(report[key]["real"]) == {"0", "0.00392"}
    assert all(0 <= v <= 1 for v in report[key]["fake"].values())
  for key in ("xi_fake", "xi_real", "fail_fake", "fail_real"):
    assert 0 <= report["dat"][key] <= 3
  for side in ("real", "fake"):  # Eqs. 11-13 at eps 0.01 (not a DAT run), sign steps
    first = report["dat"]["first_order"][side]
    assert first["epsilon"] == 0.01 and first["direction"] == "sign"
    assert 0 <= first["overshoot_fraction"] <= 1 and first["relative_error_median"] >= 0
  grads = report["gradients"]
  assert grads["l1"] > 0 and 0 <= grads["sparsity"] <= 1
  assert sum(grads["histogram"]["counts"]) == 10 * 32 * 32
  assert len(grads["histogram"]["edges"]) == 51
  assert set(report["confidence"]) == {"real", "adversarial", "epsilon"}
  assert isinstance(report["wdist"], float)
  for name in ("gradient_grid", "gradient_inputs", "gradient_histogram"):
    assert (out / f"{name}_step2.png").exists()
  png = tf.io.decode_png((out / "gradient_grid_step2.png").read_bytes()).numpy()
  assert png.shape == (3 * 34 + 2, 4 * 34 + 2, 1)  # 10 maps: 3 rows x 4 columns of 32x32


def test_diagnose_cli_errors_are_one_clear_message(run_dir, tmp_path):
  model_dir, _, _ = run_dir
  proc = _cli([f"--model_dir={model_dir}", "--which=class_pgd", "--split=train",
               f"--out={tmp_path}"])
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "auxiliary-classifier head" in proc.stderr and "Traceback" not in proc.stderr
  proc = _cli([f"--model_dir={model_dir}", "--which=modes", f"--out={tmp_path}"])
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "needs a run on a 2-D mixture" in proc.stderr and "Traceback" not in proc.stderr
  proc = _cli([f"--model_dir={model_dir}", "--which=wdist", f"--out={tmp_path}",
               "--gin_param=dataset.path = '/nonexistent/data.npz'"])
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "--gin_param" in proc.stderr and "Traceback" not in proc.stderr


def test_class_pgd_and_labels_on_real_discriminators():
  from tfadvgan import models  # pylint: disable=g-import-not-at-top
  d = models.build_discriminator(input_shape=(32, 32, 1), head="ac", num_classes=3, width=8)
  gan = type("Gan", (), {"discriminator": d, "conditional": True})()
  d_fn = diag.discriminator_fn(gan)
  x = np.random.default_rng(2).uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32)
  y = np.array([0, 1, 2, 0, 1, 2], np.int32)
  got = diag.classifier_accuracy_under_pgd(d_fn, x, y, epsilons=[0.0, 0.02], steps=2,
                                           batch_size=4)
  clean = np.argmax(d(x, y, training=False)["class_logits"].numpy(), axis=-1) == y
  assert got[0.0] == pytest.approx(np.mean(clean)) and 0 <= got[0.02] <= got[0.0]
  with pytest.raises(errors.ConfigError, match="class-conditional"):
    diag.d_accuracy(d_fn, x, epsilons=[0.0])  # a conditional run without labels
  plain = models.build_discriminator(input_shape=(32, 32, 1), width=8)
  plain_fn = diag.discriminator_fn(type("Gan", (), {"discriminator": plain})())
  with pytest.raises(errors.ConfigError, match="auxiliary-classifier"):
    diag.classifier_accuracy_under_pgd(plain_fn, x, y, epsilons=[0.02])


def _tiny_classifier(tmp_path, seed, name):
  """A small untrained domain CNN saved as `tmp_path/<name>.keras`: (model, path)."""
  from tfadvgan.metrics import domain_classifier  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  model = domain_classifier.build_domain_cnn(input_shape=(32, 32, 1), num_classes=10, width=4,
                                             feature_dim=8)
  path = str(tmp_path / f"{name}.keras")
  domain_classifier.save_domain_classifier(model, path, name)
  return model, path


def test_diagnose_cli_attacks_a_given_classifier_side_by_side(run_dir, tmp_path):
  """--classifier_path: the same PGD on a train_classifier.py model, equal to the library call."""
  model_dir, _, data = run_dir
  model, path = _tiny_classifier(tmp_path, 3, "tiny_madry")
  out = tmp_path / "diag"
  proc = _cli([f"--model_dir={model_dir}", "--which=class_pgd", "--split=train", "--num=12",
               f"--classifier_path={path}", "--class_epsilons=0,0.04", "--class_pgd_steps=3",
               "--batch_size=6", f"--out={out}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / "diagnostics_step2.json").read_text())
  assert "class_pgd" not in report  # the run's head is plain: only the classifier is attacked
  got = report["class_pgd_classifier"]
  assert got["name"] == "tiny_madry"
  with np.load(data) as f:
    images = f["images"][:12].astype(np.float32) / 127.5 - 1.0
    labels = f["labels"][:12].astype(np.int32)
  want = diag.classifier_accuracy_under_pgd(lambda x, labels=None: model(x, training=False),
                                            images, labels, epsilons=[0.0, 0.04], steps=3,
                                            batch_size=6)
  assert got["accuracy"]["0"] == pytest.approx(want[0.0])
  assert got["accuracy"]["0.04"] == pytest.approx(want[0.04])
  assert got["accuracy"]["0.04"] <= got["accuracy"]["0"]


@pytest.mark.slow  # 22 s (a diagnose.py process); local_lipschitz's math is checked in the quick suite
def test_diagnose_generalization_compares_train_and_test(run_dir, tmp_path):
  """Rob-GAN Fig. 1 through the CLI: per split, the library's LLV and PGD accuracy; the gaps."""
  import helpers  # pylint: disable=g-import-not-at-top
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  model_dir, _, _ = run_dir
  rng = np.random.default_rng(17)
  idx = tmp_path / "idx"
  idx.mkdir()
  for prefix in ("train", "t10k"):
    helpers.write_idx(str(idx / f"{prefix}-images-idx3-ubyte"), rng.integers(0, 256, (8, 28, 28)))
    helpers.write_idx(str(idx / f"{prefix}-labels-idx1-ubyte"), rng.integers(0, 10, 8))
  model, path = _tiny_classifier(tmp_path, 4, "clf")
  out = tmp_path / "diag"
  proc = _cli([f"--model_dir={model_dir}", "--which=generalization", "--num=8",
               f"--classifier_path={path}", "--class_epsilons=0,0.04", "--class_pgd_steps=2",
               "--batch_size=4", f"--out={out}", "--gin_param=dataset.source = 'idx'",
               f"--gin_param=dataset.path = '{idx}'"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads((out / "diagnostics_step2.json").read_text())["generalization"]
  assert "discriminator" not in got  # a plain head: only the classifier
  got = got["classifier"]
  fn = lambda x, labels=None: model(x, training=False)  # noqa: E731
  for split in ("train", "test"):
    source = data_lib.load(source="idx", path=str(idx), split=split)
    images, labels = (np.concatenate(a) for a in zip(*[
        (b[0].numpy(), b[1].numpy()) for b in source.images.batch(8)]))
    llv = diag.local_lipschitz(fn, images, labels, batch_size=4)["mean"]
    acc = diag.classifier_accuracy_under_pgd(fn, images, labels, epsilons=[0.0, 0.04], steps=2,
                                             batch_size=4)
    assert got[split]["llv_mean"] == pytest.approx(llv, rel=1e-5)
    assert got[split]["accuracy"] == {"0": pytest.approx(acc[0.0]),
                                      "0.04": pytest.approx(acc[0.04])}
  assert got["llv_gap"] == pytest.approx(got["test"]["llv_mean"] - got["train"]["llv_mean"])
  assert got["train"]["llv_mean"] != got["test"]["llv_mean"]  # two different splits were read


def test_under_attack_runs_clean_once_and_each_epsilon_with_its_step_and_seed():
  """The one harness: epsilon 0 is the clean score (computed once per call), every other epsilon
  gets the attack with its step size and seed, and scores are means over the padded batches."""
  rng = np.random.default_rng(21)
  x = rng.uniform(-1, 1, (7, 3)).astype(np.float32)
  w = np.array([0.5, -2.0, 1.25], np.float32)

  def model(v, labels=None):
    del labels
    return tf.reduce_sum(v * w, axis=1)

  def shift(f, xb, yb, eps, alpha, seed):  # x + eps * alpha + seed[1] / 100, a known move
    del f, yb
    return xb + eps * alpha + tf.cast(seed[1], tf.float32) / 100.0

  def score(f, xb, yb, x_clean):
    del yb
    return {"t": f(xb), "gap": f(xb) - f(x_clean)}

  got = diag.under_attack(model, x, None, [0.0, 0.5, 0.0, 2.0], shift, score,
                          lambda eps: 3.0 * eps, seed=(1, 7), batch_size=4)
  t = x.astype(np.float64) @ w.astype(np.float64)
  for eps in (0.5, 2.0):
    move = eps * 3.0 * eps + 0.07
    assert got[eps]["t"] == pytest.approx(np.mean(t + move * w.sum()), rel=1e-5)
    assert got[eps]["gap"] == pytest.approx(move * w.sum(), rel=1e-5)
  assert got[0.0] == {"t": pytest.approx(np.mean(t), rel=1e-6), "gap": 0.0}
  # Without zero_is_clean, epsilon 0 is an attack of size 0 (the seed still moves it).
  unclean = diag.under_attack(model, x, None, [0.0], shift, score, lambda eps: 1.0,
                              seed=(1, 7), zero_is_clean=False)[0.0]
  assert unclean["gap"] == pytest.approx(0.07 * w.sum(), rel=1e-5)
  # attack None: every epsilon gives the clean scores.
  assert diag.under_attack(model, x, None, [0.3], None, score, lambda eps: 1.0)[0.3] == got[0.0]
  with pytest.raises(errors.ConfigError, match="epsilons"):
    diag.under_attack(model, x, None, [-1.0], shift, score, lambda eps: 1.0)
  with pytest.raises(errors.ConfigError, match="my_metric needs the true labels"):
    diag.under_attack(model, x, None, [0.1], shift, score, lambda eps: 1.0, labels_for="my_metric")


def test_metrics_decides_which_diagnostics_apply_to_a_method():
  """DAT runs (by class, subclasses too) get xi in the periodic diagnostics and their own attack
  in the first-order check; other methods get neither."""
  from tfadvgan import gans  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics.diagnostics import dat  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics.diagnostics import suite  # pylint: disable=g-import-not-at-top

  class MyDAT(gans.DAT):  # pylint: disable=abstract-method
    pass

  run = object.__new__(MyDAT)  # the class decides: no networks needed
  object.__setattr__(run, "epsilon", 0.03)
  object.__setattr__(run, "direction", "l2")
  assert diag.measures_attack_success(run) and dat.first_order_attack(run) == (0.03, "l2")
  for cls in (gans.GAN, gans.ASGAN, gans.RobGAN):
    other = object.__new__(cls)
    assert not diag.measures_attack_success(other)
    assert dat.first_order_attack(other) == (0.01, "sign")
  assert not hasattr(gans.GAN, "targeted_attack")  # the GAN classes do not carry the decision
  assert suite.default_which(False) == ["accuracy", "pgd_accuracy", "dat", "gradients",
                                        "confidence", "wdist"]
  assert suite.default_which(True, dataset="ring") == [
      "accuracy", "pgd_accuracy", "class_pgd", "dat", "gradients", "confidence", "wdist", "modes"]


def test_suite_settings_defaults_are_diagnose_flag_defaults():
  """One value per knob: the suite's defaults and diagnose.py's flag defaults agree, and so do the
  diagnostics' names (in a child process: the CLI module defines flags that other CLI modules
  define too)."""
  code = ("import dataclasses, json\nfrom absl import flags\nfrom tfadvgan.cli import diagnose\n"
          "from tfadvgan.metrics.diagnostics import suite\nF = flags.FLAGS\nout = {}\n"
          "for f in dataclasses.fields(suite.Settings):\n"
          "  flag = F[f.name].default\n"
          "  if f.name.endswith('epsilons'):\n"
          "    flag = [float(v) for v in flag.split(',')]\n"
          "  out[f.name] = [list(f.default) if isinstance(f.default, tuple) else f.default, flag]\n"
          "assert diagnose.WHICH == suite.WHICH, (diagnose.WHICH, suite.WHICH)\n"
          "print(json.dumps(out))\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=ROOT), timeout=120, check=True)
  pairs = json.loads(proc.stdout.splitlines()[-1])
  assert len(pairs) == 17
  for name, (default, flag) in pairs.items():
    assert default == pytest.approx(flag), name
