"""DAT (Eqs. 8-10) on a linear discriminator with the Wasserstein pair g1(t) = t, g2(t) = -t."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import LinearD, LinearG  # pylint: disable=g-bad-import-order
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans.base import GAN
from tfadvgan.gans.dat import DAT
from tfadvgan.training import engine

B = 8


class RecordingDAT(DAT):

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.seen = [tf.Variable(tf.zeros([B, 2]), trainable=False) for _ in range(2)]

  def perturbations(self, *args, **kwargs):
    out = super().perturbations(*args, **kwargs)
    if out[0].shape[0] == B:
      self.seen[0].assign(out[0])
      self.seen[1].assign(out[1])
    return out


def data():
  """Replica 0 (rows 0-3) and replica 1 (rows 4-7) see very different fakes; within a half the
  rows differ too (small jitter), so a row mix-up or a wrong reduction cannot go unseen."""
  rng = np.random.default_rng(0)
  real = (np.array([[0.5, 0.1]] * 4 + [[0.4, 0.2]] * 4)
          + rng.uniform(-0.05, 0.05, (B, 2))).astype(np.float32)
  z = (np.array([[1.0, 0, 0]] * 4 + [[-1.0, 0, 0]] * 4)
       + rng.uniform(-0.1, 0.1, (B, 3))).astype(np.float32)
  arrays = {"images": real[:, None], "z_d": z[:, None],
            "z_g": rng.normal(size=(B, 3)).astype(np.float32)}
  return arrays, tf.data.Dataset.from_tensor_slices(arrays).batch(B, drop_remainder=True)


# lambda_1 != lambda_2 (the defaults are both 1), so that swapping them shows.
LAM_CLEAN, LAM_ADV = 0.6, 1.7


def make(cls=RecordingDAT, strategy=None, lr=0.1, g_lr=0.03, jit_compile=False, **kwargs):
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    gan = cls(LinearG(), LinearD(), loss="wasserstein", **kwargs)
    gan.discriminator.weights[0].assign([[1.0], [0.3]])
    gan.discriminator.weights[1].assign([0.0])
    gan.generator.weights[0].assign([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    gan.generator.weights[1].assign([0.0, 0.0])
    gan.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(g_lr), jit_compile=jit_compile)
  return gan


def numpy_dat(real, fake, w, eps, lam1=1.0, lam2=1.0, lr=0.1, local=False):
  """Perturbations and the updated w of one DAT step (Wasserstein, sign step, clip)."""
  t_r, t_f = real @ w, fake @ w
  if local:  # what replica-local batch means would give (two halves)
    target_r = np.repeat([t_f[:4].mean(), t_f[4:].mean()], 4)
    target_f = np.repeat([-t_r[:4].mean(), -t_r[4:].mean()], 4)
  else:
    target_r, target_f = t_f.mean(), -t_r.mean()
  # grad_x |t_r - T| = sign(t_r - T) w ; grad_x |-t_f - T_f| = sign(-t_f - T_f) (-w)
  d_r = -eps * np.sign(np.sign(t_r - target_r)[:, None] * w[None])
  d_f = -eps * np.sign(np.sign(-t_f - target_f)[:, None] * -w[None])
  real_adv, fake_adv = np.clip(real + d_r, -1, 1), np.clip(fake + d_f, -1, 1)
  grad = lam1 * (-real.mean(0) + fake.mean(0)) + lam2 * (-real_adv.mean(0) + fake_adv.mean(0))
  return real_adv, fake_adv, w - lr * grad


def test_perturbations_match_eq9_and_move_toward_the_other_class():
  arrays, ds = data()
  gan = make(epsilon=0.05, clean_weight=LAM_CLEAN, adv_weight=LAM_ADV)
  real = arrays["images"][:, 0]
  fake = arrays["z_d"][:, 0] @ gan.generator.weights[0].numpy()
  w = gan.discriminator.weights[0].numpy()[:, 0]
  real_adv, fake_adv, w_new = numpy_dat(real, fake, w, 0.05, LAM_CLEAN, LAM_ADV)
  engine.fit(gan, ds, 1)
  np.testing.assert_allclose(gan.seen[0].numpy(), real_adv, atol=1e-6)
  np.testing.assert_allclose(gan.seen[1].numpy(), fake_adv, atol=1e-6)
  np.testing.assert_allclose(gan.discriminator.weights[0].numpy()[:, 0], w_new, rtol=1e-5)
  # Direction: each real's logit moves toward the fakes' mean, each fake's toward the reals'.
  t_r, t_f = real @ w, fake @ w
  assert np.all(np.abs(real_adv @ w - t_f.mean()) < np.abs(t_r - t_f.mean()))
  assert np.all(np.abs(fake_adv @ w - t_r.mean()) < np.abs(t_f - t_r.mean()))


@pytest.mark.parametrize("step", ["sign", "raw", "l2"])
def test_linf_bound_holds_for_every_step_mode(step):
  arrays, ds = data()
  eps = 0.05
  gan = make(epsilon=eps, direction=step, clip=False)
  gan.discriminator.weights[0].assign([[40.0], [-7.0]])  # large raw gradients
  engine.fit(gan, ds, 1)
  real = arrays["images"][:, 0]
  delta = gan.seen[0].numpy() - real
  assert np.max(np.abs(delta)) <= eps + 1e-6
  if step == "l2":
    np.testing.assert_allclose(np.linalg.norm(delta, axis=1), eps, rtol=1e-5)


def test_adv_weight_zero_reproduces_the_baseline_exactly():
  _, ds = data()
  dat = make(cls=DAT, adv_weight=0.0, epsilon=0.05, n_dis=1, penalty="wgan_gp")
  baseline = make(cls=GAN, n_dis=1, penalty="wgan_gp")
  for a, b in zip(dat.weights, baseline.weights):
    b.assign(a.numpy())
  engine.fit(dat, ds.repeat(), 3)
  engine.fit(baseline, ds.repeat(), 3)
  for a, b in zip(dat.weights, baseline.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_batch_means_are_global_across_replicas():
  arrays, ds = data()
  kwargs = dict(epsilon=0.05, clean_weight=LAM_CLEAN, adv_weight=LAM_ADV)
  one = make(**kwargs)
  two = make(strategy=distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
             **kwargs)
  real = arrays["images"][:, 0]
  fake = arrays["z_d"][:, 0] @ one.generator.weights[0].numpy()
  w = one.discriminator.weights[0].numpy()[:, 0]
  _, _, w_global = numpy_dat(real, fake, w, 0.05, LAM_CLEAN, LAM_ADV)
  _, _, w_local = numpy_dat(real, fake, w, 0.05, LAM_CLEAN, LAM_ADV, local=True)
  assert not np.allclose(w_global, w_local)  # the data makes the two readings differ
  engine.fit(one, ds, 1)
  engine.fit(two, ds, 1)
  for m in (one, two):
    np.testing.assert_allclose(m.discriminator.weights[0].numpy()[:, 0], w_global, rtol=1e-5)
  for a, b in zip(one.weights, two.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_batch_means_are_global_across_replicas_under_per_replica_xla():
  """Two replicas with XLA per replica: the targets' sums are all-reduced between the two
  compiled pieces, so D's update is the global-means one (each replica's own means would give
  `w_local`, which the data sets apart)."""
  arrays, ds = data()
  kwargs = dict(epsilon=0.05, clean_weight=LAM_CLEAN, adv_weight=LAM_ADV)
  two = make(cls=DAT, strategy=distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
             jit_compile=True, **kwargs)
  real = arrays["images"][:, 0]
  fake = arrays["z_d"][:, 0] @ two.generator.weights[0].numpy()
  w = two.discriminator.weights[0].numpy()[:, 0]
  _, _, w_global = numpy_dat(real, fake, w, 0.05, LAM_CLEAN, LAM_ADV)
  _, _, w_local = numpy_dat(real, fake, w, 0.05, LAM_CLEAN, LAM_ADV, local=True)
  assert np.abs(w_global - w_local).max() > 1e-3  # the data makes the two readings differ
  engine.fit(two, ds, 1)
  assert two.replica_jit and two.distribute_strategy.num_replicas_in_sync == 2
  np.testing.assert_allclose(two.discriminator.weights[0].numpy()[:, 0], w_global, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(epsilon=-0.1), "epsilon"),
    (dict(direction="pgd"), "sign"),
    (dict(adv_weight=-1.0), "adv_weight"),
])
def test_bad_knobs(kwargs, message):
  with pytest.raises(errors.ConfigError, match=message):
    make(**kwargs)


class CapturingDAT(DAT):
  """Keeps every perturbation pair it computes (eager calls only)."""

  def perturbations(self, *args, **kwargs):
    out = super().perturbations(*args, **kwargs)
    self.captured.append([out[0].numpy(), out[1].numpy()])
    return out


# Four cases stay quick (both steps; the plain and penalised families); all ten run with -m slow.
_QUICK_REUSE = {("non_saturating", None, "sign"), ("non_saturating", None, "raw"),
                ("wasserstein", "wgan_gp", "sign"), ("wasserstein", "wgan_alp", "raw")}


@pytest.mark.parametrize("loss, penalty, step", [
    pytest.param(*case, marks=() if case in _QUICK_REUSE else pytest.mark.slow)
    for case in [(loss, penalty, step) for loss, penalty in [
        ("non_saturating", None), ("wasserstein", None), ("wasserstein", "wgan_gp"),
        ("wasserstein", "wgan_lp"), ("wasserstein", "wgan_alp")] for step in ("sign", "raw")]])
def test_clean_pass_reuse_gives_the_same_perturbations_exactly(loss, penalty, step):
  """Attack gradients from the clean pass's tape equal those of fresh passes bit for bit, on a
  DCGAN D with batch norm in training mode (the DAT configs' D), and so do D's weight gradients."""
  from tfadvgan import models  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(21)
  real = tf.constant(rng.uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32))
  fake = tf.constant(rng.uniform(-1, 1, (6, 32, 32, 1)).astype(np.float32))
  gans = []
  for reuse in (True, False):
    keras.utils.set_random_seed(5)
    gan = CapturingDAT(models.build_generator(output_shape=(32, 32, 1), latent_dim=4, width=8),
                       models.build_discriminator(input_shape=(32, 32, 1), width=8),
                       loss=loss, penalty=penalty, penalty_weight=10.0 if penalty else 0.0,
                       epsilon=0.05, direction=step, reuse_clean_pass=reuse)
    gan.captured = []
    gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), jit_compile=False)
    gans.append(gan)
  for a, b in zip(gans[0].discriminator.weights, gans[1].discriminator.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # the same D
  seed = tf.constant([3, 4])
  out = [gan._discriminator_gradients(real, None, fake, None, seed) for gan in gans]  # pylint: disable=protected-access
  assert len(gans[0].captured) == len(gans[1].captured) == 1
  for reused, fresh in zip(gans[0].captured[0], gans[1].captured[0]):
    np.testing.assert_array_equal(reused, fresh)
    assert np.any(reused != np.clip(real.numpy(), -1, 1))  # an attack took place
  for a, b in zip(out[0][0], out[1][0]):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
