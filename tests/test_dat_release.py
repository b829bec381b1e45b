"""DAT with the release's knobs (iceli1007/DAT-GAN, `advtrain_step` in torch_mimicry/nets/gan/gan.py)
against a NumPy transcription of that function's lines, on a linear D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers  # pylint: disable=g-bad-import-order
from test_dat import B, RecordingDAT, data  # pylint: disable=g-bad-import-order
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans.dat import DAT
from tfadvgan.training import engine

RELEASE = dict(objective="batch_mean", value="logit", direction="raw", epsilon=1.0, clean_weight=0.0,
               adv_weight=1.0, clip="fake")


def softplus(t):
  return np.logaddexp(0.0, t)


def sigmoid(t):
  return 1.0 / (1.0 + np.exp(-t))


def release_step(real, fake, w, c, loss, lr, halves=False):
  """`advtrain_step` line by line for D(x) = x w + c, then one SGD step on w.

  `halves`: the means over each replica's half (what replica-local batch means would give)."""
  def mean(v):
    if not halves:
      return np.full_like(v, v.mean())
    return np.repeat([v[:B // 2].mean(), v[B // 2:].mean()], B // 2)
  m = B // 2 if halves else B
  output_real, output_fake = real @ w + c, fake @ w + c           # self.forward(real/fake)
  real_value, fake_value = mean(output_real), mean(output_fake)   # torch.mean(output_*)
  # fake_adv_loss = |mean(D(fake_adv)) - real_value|; its gradient for row i: sign(.) * w / m
  fake_grad = np.sign(mean(output_fake) - real_value)[:, None] * w[None] / m
  fake_adv = np.clip(fake - np.clip(fake_grad, -1, 1), -1, 1)     # clamp(-t, t), then clamp(-1, 1)
  real_grad = np.sign(mean(output_real) - fake_value)[:, None] * w[None] / m
  real_adv = real - np.clip(real_grad, -1, 1)                     # clamped only after D's pass
  d_real, d_fake = real_adv @ w + c, fake_adv @ w + c             # *_adv_validity
  if loss == "wasserstein":  # -mean D(real_adv) + mean D(fake_adv)
    grad_w = -real_adv.mean(0) + fake_adv.mean(0)
  else:  # BCE(real_adv, 1) + BCE(fake_adv, 0) = mean softplus(-d_real) + mean softplus(d_fake)
    grad_w = (-sigmoid(-d_real)[:, None] * real_adv).mean(0) + (
        sigmoid(d_fake)[:, None] * fake_adv).mean(0)
  errd = (-d_real.mean() + d_fake.mean() if loss == "wasserstein"
          else softplus(-d_real).mean() + softplus(d_fake).mean())
  return real_adv, fake_adv, w - lr * grad_w, errd


def setup(loss, **kwargs):
  arrays, ds = data()
  gan = make(loss=loss, **kwargs)
  # Large, asymmetric weights: the 1/m gradient clamps on the first pixel (40 / 8 = 5 > 1) and
  # not on the second (7 / 8), and attacked reals leave [-1, 1].
  gan.discriminator.weights[0].assign([[40.0], [-7.0]])
  gan.discriminator.weights[1].assign([0.3])
  real = arrays["images"][:, 0]
  fake = arrays["z_d"][:, 0] @ gan.generator.weights[0].numpy()
  return gan, ds, real, fake


def make(loss, strategy=None, jit=False, **kwargs):
  """test_dat.make with a loss of choice (its linear G and D) and the release's knobs."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    gan = RecordingDAT(helpers.LinearG(), helpers.LinearD(),
                       loss=loss, **{**RELEASE, **kwargs})
    gan.generator.weights[0].assign([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    gan.generator.weights[1].assign([0.0, 0.0])
    gan.compile(keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.03), jit_compile=jit)
  return gan


@pytest.mark.parametrize("loss", ["wasserstein", "non_saturating"])
@pytest.mark.parametrize("reuse", [True, False])
def test_release_knobs_reproduce_advtrain_step(loss, reuse):
  gan, ds, real, fake = setup(loss, reuse_clean_pass=reuse)
  w, c = gan.discriminator.weights[0].numpy()[:, 0], gan.discriminator.weights[1].numpy()[0]
  real_adv, fake_adv, w_new, errd = release_step(real, fake, w, c, loss, lr=0.01)
  assert np.abs(real_adv).max() > 1.05 # the reals D trains on are unclipped
  assert np.abs(fake_adv).max() <= 1.0
  logs = engine.fit(gan, ds, 1)
  np.testing.assert_allclose(gan.seen[0].numpy(), real_adv, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(gan.seen[1].numpy(), fake_adv, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(gan.discriminator.weights[0].numpy()[:, 0], w_new, rtol=1e-5)
  # the D loss has the attacked terms only (lambda_1 = 0): its value is the release's errD
  assert logs["d_loss"] == pytest.approx(errd, rel=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_release_knobs_give_the_same_update_on_one_and_two_replicas(jit):
  """Batch means, their signs and the 1/m are over the global batch: two replicas (plain, and
  per-replica XLA) give one device's update; replica-local means would not."""
  one, ds, real, fake = setup("non_saturating")
  mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  with mirrored.scope():
    two = make("non_saturating", strategy=mirrored, jit=jit)
  for a, b in zip(one.weights, two.weights):
    b.assign(a.numpy())
  w, c = one.discriminator.weights[0].numpy()[:, 0], one.discriminator.weights[1].numpy()[0]
  _, _, w_global, _ = release_step(real, fake, w, c, "non_saturating", lr=0.01)
  _, _, w_local, _ = release_step(real, fake, w, c, "non_saturating", lr=0.01, halves=True)
  assert not np.allclose(w_global, w_local, rtol=1e-4)  # the data tells the readings apart
  engine.fit(one, ds, 1)
  engine.fit(two, ds, 1)
  assert two.replica_jit == jit
  for m in (one, two):
    np.testing.assert_allclose(m.discriminator.weights[0].numpy()[:, 0], w_global, rtol=1e-5)
  for a, b in zip(one.weights, two.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_value_loss_attacks_g1_g2_and_clip_both_clips_reals():
  """value='loss' under the batch mean: the reals' gradient is that of mean g1(D(x_r)) =
  mean -softplus(-D) toward mean g1(D(x_f)); with clip='both' the reals are clipped too."""
  gan, ds, real, fake = setup("non_saturating", value="loss", clip="both")
  w, c = gan.discriminator.weights[0].numpy()[:, 0], gan.discriminator.weights[1].numpy()[0]
  g1 = lambda t: -softplus(-t)  # noqa: E731
  t_r, t_f = real @ w + c, fake @ w + c
  s = np.sign(g1(t_r).mean() - g1(t_f).mean())
  grad = s * (sigmoid(-t_r)[:, None] * w[None]) / B  # d g1(t) / dt = sigmoid(-t)
  engine.fit(gan, ds, 1)
  np.testing.assert_allclose(gan.seen[0].numpy(), np.clip(real - np.clip(grad, -1, 1), -1, 1),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(objective="mean"), "DAT.objective 'mean'. Choose one of: batch_mean, per_example"),
    (dict(value="probability"), "DAT.value 'probability'. Choose one of: logit, loss"),
    (dict(clip="reals"), "DAT.clip 'reals'. Choose one of: both, fake, none"),
    (dict(clean_weight=-1.0), "DAT.clean_weight must be >= 0"),
])
def test_bad_release_knobs(kwargs, message):
  with pytest.raises(errors.ConfigError, match=message):
    DAT(helpers.LinearG(), helpers.LinearD(), **kwargs)
