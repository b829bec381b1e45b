"""AS-GAN (Algorithm 1) on a linear discriminator, where every quantity is closed-form."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import batches, LinearD, LinearG  # pylint: disable=g-bad-import-order
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans.as_gan import ASGAN
from tfadvgan.training import engine


def sigmoid(t):
  return 1.0 / (1.0 + np.exp(-t))


class RecordingASGAN(ASGAN):
  """Keeps the last x_hat for inspection."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.last_x_hat = tf.Variable(tf.zeros([8, 2]), trainable=False)

  def adversarial_reals(self, *args):
    x_hat = super().adversarial_reals(*args)
    if x_hat.shape[0] == self.last_x_hat.shape[0]:  # one replica holds the whole batch
      self.last_x_hat.assign(x_hat)
    return x_hat


def make(strategy=None, lr=1.0, g_lr=0.3, w0=(0.05, -0.5), **kwargs):
  strategy = strategy or tf.distribute.get_strategy()
  keras.utils.set_random_seed(5)
  with strategy.scope():
    gan = RecordingASGAN(LinearG(), LinearD(), **kwargs)
    gan.discriminator.weights[0].assign(np.array(w0, np.float32)[:, None])
    gan.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(g_lr), jit_compile=False)
  return gan


def first_update(arrays, gan, lr):
  """NumPy D update of the non-saturating loss; returns (x, fake, w0, c0, w1, c1)."""
  (k, b), (w, c) = [[v.numpy().copy() for v in m.weights]
                    for m in (gan.generator, gan.discriminator)]
  x, z = arrays["images"][:, 0], arrays["z_d"][:, 0]
  fake = z @ k + b
  t_r, t_f = (x @ w + c)[:, 0], (fake @ w + c)[:, 0]
  gw = (-(sigmoid(-t_r))[:, None] * x + sigmoid(t_f)[:, None] * fake).mean(0)
  gc = (-sigmoid(-t_r) + sigmoid(t_f)).mean()
  return x, fake, w, c, w - lr * gw[:, None], c - lr * gc


@pytest.mark.parametrize("second_update", ["real", "real_fake"])
def test_fgsm_point_pre_update_gradient_and_second_update(second_update):
  lr, eps = 1.0, 0.3
  arrays, ds = batches(1, batch=8, steps=1)
  gan = make(lr=lr, epsilon=eps, second_update=second_update)
  x, fake, w0, c0, w1, c1 = first_update(arrays, gan, lr)
  # The test only discriminates pre- from post-update weights if a sign flips.
  assert np.any(np.sign(w0) != np.sign(w1))
  # dL_D/dx_i = -sigmoid(-t_i) w0 / B, so sign(grad) = -sign(w0) (Eq. 7 with L_D = -V).
  x_hat = np.clip(x - eps * np.sign(w0[:, 0]), -1, 1)
  t_hat = (x_hat @ w1 + c1)[:, 0]
  gw = (-(sigmoid(-t_hat))[:, None] * x_hat).mean(0)
  gc = (-sigmoid(-t_hat)).mean()
  if second_update == "real_fake":
    t_f = (fake @ w1 + c1)[:, 0]
    gw += (sigmoid(t_f)[:, None] * fake).mean(0)
    gc += sigmoid(t_f).mean()
  w2, c2 = w1 - lr * gw[:, None], c1 - lr * gc
  engine.fit(gan, ds, 1)
  np.testing.assert_allclose(gan.last_x_hat.numpy(), x_hat, atol=1e-6)
  np.testing.assert_allclose(gan.discriminator.weights[0].numpy(), w2, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gan.discriminator.weights[1].numpy(), c2, rtol=1e-5, atol=1e-6)


def test_epsilon_zero_second_update_sees_the_real_batch():
  arrays, ds = batches(1, batch=8, steps=1)
  gan = make(epsilon=0.0, clip=False)
  engine.fit(gan, ds, 1)
  np.testing.assert_array_equal(gan.last_x_hat.numpy(), arrays["images"][:, 0])
  assert int(gan.d_optimizer.iterations.numpy()) == 2  # D updated twice


def test_gaussian_ablation_has_the_same_linf_budget():
  arrays, ds = batches(1, batch=8, steps=1)
  arrays["images"] = np.clip(arrays["images"], -0.5, 0.5)
  ds = tf.data.Dataset.from_tensor_slices(arrays).batch(8, drop_remainder=True)
  eps = 0.1
  gan = make(epsilon=eps, attack="gaussian")
  engine.fit(gan, ds, 1)
  delta = gan.last_x_hat.numpy() - arrays["images"][:, 0]
  np.testing.assert_allclose(np.abs(delta), eps, atol=1e-6)
  # A random direction: not the FGSM direction -sign(w0) on every pixel.
  assert not np.all(np.sign(delta) == -np.sign(gan.discriminator.weights[0].numpy()[:, 0]))


def test_pgd_stays_in_the_ball_and_increases_the_loss():
  arrays, ds = batches(1, batch=8, steps=1)
  eps = 0.2
  gan = make(epsilon=eps, attack="pgd", pgd_steps=3, clip=False, lr=1e-6)
  w, c = [v.numpy() for v in gan.discriminator.weights]
  engine.fit(gan, ds, 1)
  x, x_hat = arrays["images"][:, 0], gan.last_x_hat.numpy()
  assert np.max(np.abs(x_hat - x)) <= eps + 1e-6
  loss = lambda v: np.log1p(np.exp(-(v @ w + c)[:, 0]))  # noqa: E731  softplus(-t)
  assert np.all(loss(x_hat) > loss(x))


def test_epsilon_schedule_warmup_then_ramp():
  gan = make(epsilon=0.4, warmup_steps=10, ramp_steps=4)
  got = [float(gan.epsilon_at(s)) for s in (0, 9, 10, 11, 12, 14, 100)]
  np.testing.assert_allclose(got, [0, 0, 0, 0.1, 0.2, 0.4, 0.4], atol=1e-7)
  jump = make(epsilon=0.4, warmup_steps=3)
  np.testing.assert_allclose([float(jump.epsilon_at(s)) for s in (2, 3)], [0, 0.4])


def test_epsilon_per_epoch_warmup_as_the_release():
  """eps = 0 for the first 3 steps of every 5-step epoch (the release: `if i < 300: p = 0`)."""
  gan = make(epsilon=0.4, epoch_warmup_steps=3, steps_per_epoch=5)
  got = [float(gan.epsilon_at(s)) for s in range(11)]
  np.testing.assert_allclose(got, [0, 0, 0, 0.4, 0.4, 0, 0, 0, 0.4, 0.4, 0], atol=1e-7)
  both = make(epsilon=0.4, warmup_steps=6, epoch_warmup_steps=1, steps_per_epoch=4)
  got = [float(both.epsilon_at(s)) for s in range(10)]
  np.testing.assert_allclose(got, [0] * 6 + [0.4, 0.4, 0, 0.4], atol=1e-7)
  # The step uses the schedule at its own 0-based index: steps 0, 1, 2 of 2-step epochs with one
  # warm-up step use eps 0, 0.4, 0 (the logged value is the mean since the start).
  run = make(epsilon=0.4, epoch_warmup_steps=1, steps_per_epoch=2)
  _, ds = batches(1, batch=8, steps=3)
  logged = [engine.fit(run, ds.skip(i).take(1), 1)["epsilon"] for i in range(3)]
  np.testing.assert_allclose(logged, [0, 0.2, 0.4 / 3], atol=1e-6)


def test_two_replicas_match_one_device():
  _, ds = batches(2, batch=8, steps=2)
  kwargs = dict(epsilon=0.1, n_dis=2, lr=0.1)
  one = make(**kwargs)
  two = make(strategy=distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
             **kwargs)
  for a, b in zip(one.discriminator.weights + one.generator.weights,
                  two.discriminator.weights + two.generator.weights):
    b.assign(a.numpy())
  engine.fit(one, ds, 2)
  engine.fit(two, ds, 2)
  for a, b in zip(one.discriminator.weights + one.generator.weights,
                  two.discriminator.weights + two.generator.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(epsilon=-1.0), "epsilon"),
    (dict(attack="bim"), "fgsm"),
    (dict(second_update="fake"), "real_fake"),
    (dict(warmup_steps=-2), "warmup_steps"),
    (dict(epoch_warmup_steps=300), "needs ASGAN.steps_per_epoch"),
    (dict(epoch_warmup_steps=300, steps_per_epoch=300), "must be below"),
])
def test_bad_knobs(kwargs, message):
  with pytest.raises(errors.ConfigError, match=message):
    make(**kwargs)
