"""The shared GAN step, checked update by update against NumPy on linear G and D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import DIM, LinearD, LinearG, batches, sigmoid  # pylint: disable=g-bad-import-order
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans.base import GAN
from tfadvgan.training import engine

def make(strategy=None, lr=0.1, g_lr=0.07, cls=GAN, jit=False, **kwargs):
  """D's SGD learning rate is `lr`, G's is `g_lr`: different, so that a D/G mix-up shows."""
  strategy = strategy or tf.distribute.get_strategy()
  keras.utils.set_random_seed(3)
  with strategy.scope():
    gan = cls(LinearG(), LinearD(), generator_factory=LinearG, **kwargs)
    gan.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(g_lr), jit_compile=jit)
  return gan


def np_weights(model):
  return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize("jit", [False, True])
def test_n_dis_updates_use_their_own_slice_then_g_update(jit):
  """Non-saturating loss, linear D, SGD: every update is closed-form. D's gradient depends on its
  current weights, so the updates do not commute: slice k must be used by update k, in order."""
  n_dis, lr, g_lr = 3, 0.5, 0.07
  arrays, ds = batches(n_dis, batch=8, steps=1)
  gan = make(lr=lr, g_lr=g_lr, jit=jit, loss="non_saturating", n_dis=n_dis)
  (k, b), (w, c) = np_weights(gan.generator), np_weights(gan.discriminator)
  for j in range(n_dis):
    real, z = arrays["images"][:, j], arrays["z_d"][:, j]
    fake = z @ k + b
    t_r, t_f = real @ w + c, fake @ w + c  # [B, 1]
    # d/dt softplus(-t_r) = -sigmoid(-t_r); d/dt softplus(t_f) = sigmoid(t_f).
    w = w - lr * (-sigmoid(-t_r) * real + sigmoid(t_f) * fake).mean(0)[:, None]
    c = c - lr * (-sigmoid(-t_r) + sigmoid(t_f)).mean(0)
  # G minimises mean(softplus(-D(G(z)))): d/dx = -sigmoid(-t) w^T / B.
  z = arrays["z_g"]
  t_g = (z @ k + b) @ w + c
  g_x = -sigmoid(-t_g) * w[:, 0][None] / len(z)
  k_new, b_new = k - g_lr * z.T @ g_x, b - g_lr * g_x.sum(0)
  engine.fit(gan, ds, 1)
  np.testing.assert_allclose(gan.discriminator.weights[0].numpy(), w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gan.discriminator.weights[1].numpy(), c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gan.generator.weights[0].numpy(), k_new, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gan.generator.weights[1].numpy(), b_new, rtol=1e-5, atol=1e-6)
  assert int(gan.global_step.numpy()) == 1
  assert int(gan.d_optimizer.iterations.numpy()) == n_dis


def test_the_step_is_traced_once_per_train_function():
  """Two calls of 2 steps each (steps_per_execution 2, a reset at the first) trace the step once:
  the engine's loop body is the only copy of it (a first step outside the loop was a second)."""
  _, ds = batches(1, batch=8, steps=4)
  gan = make()
  traced = []
  step = gan.train_step
  object.__setattr__(gan, "train_step", lambda data: traced.append(1) or step(data))
  run = engine.Engine(gan, steps_per_execution=2)
  run.run(ds.repeat(), 4, reset_every=2)
  assert int(gan.global_step.numpy()) == 4
  assert len(traced) == 1


@pytest.mark.parametrize("fake_weight", [1.0, 2.0])  # 2.0: Rob-GAN's release (0.5 : 0.5 : 1)
def test_reported_losses_are_plain_means(fake_weight):
  arrays, ds = batches(1, batch=8, steps=1)
  gan = make(loss="non_saturating", fake_weight=fake_weight)
  (k, b), (w, c) = np_weights(gan.generator), np_weights(gan.discriminator)
  real, fake = arrays["images"][:, 0], arrays["z_d"][:, 0] @ k + b
  t_r, t_f = (real @ w + c)[:, 0], (fake @ w + c)[:, 0]
  softplus = lambda t: np.log1p(np.exp(-np.abs(t))) + np.maximum(t, 0)  # noqa: E731
  expected = np.mean(softplus(-t_r) + fake_weight * softplus(t_f))
  lr = 0.1  # make()'s D learning rate; the update is the gradient of that same weighted loss
  g_t = -sigmoid(-t_r)[:, None] * real + fake_weight * sigmoid(t_f)[:, None] * fake
  w_new = w - lr * g_t.mean(0)[:, None]
  logs = engine.fit(gan, ds, 1)
  np.testing.assert_allclose(logs["d_loss"], expected, rtol=1e-5)
  np.testing.assert_allclose(gan.discriminator.weights[0].numpy(), w_new, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logs["d_real"], t_r.mean(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logs["wdist"], t_r.mean() - t_f.mean(), rtol=1e-5, atol=1e-6)


def test_two_replicas_match_one_device():
  """Required: k steps under MirroredStrategy(2 logical CPUs) == 1 device, same global batch."""
  _, ds = batches(2, batch=8, steps=3)
  one = make(loss="hinge", n_dis=2, penalty="wgan_lp", lr=0.05)
  two = make(strategy=distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
             loss="hinge", n_dis=2, penalty="wgan_lp", lr=0.05)
  assert two.distribute_strategy.num_replicas_in_sync == 2
  for a, b in zip(one.weights, two.weights):
    b.assign(a.numpy())
  log1 = engine.fit(one, ds, 3)
  log2 = engine.fit(two, ds, 3)
  for a, b in zip(one.discriminator.weights + one.generator.weights,
                  two.discriminator.weights + two.generator.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
  # Reported losses are means, not replica-scaled partial sums.
  for key in ("d_loss", "g_loss", "d_real", "wdist"):
    np.testing.assert_allclose(log1[key], log2[key], rtol=1e-5, atol=1e-6)


def test_jit_default_per_strategy():
  mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  assert distribute.default_jit_compile(tf.distribute.get_strategy()) is True
  assert distribute.default_jit_compile(mirrored) is True  # per replica (tests/test_replica_xla.py)
  assert distribute.resolve_jit_compile(mirrored, None) is True
  assert distribute.resolve_jit_compile(mirrored, False) is False
  assert distribute.resolve_jit_compile(mirrored, True) is True
  with pytest.raises(errors.ConfigError, match="jit_compile must be True, False or None"):
    distribute.resolve_jit_compile(mirrored, "yes")


@pytest.mark.slow
def test_keras_fit_with_jit_under_mirrored_really_fails():
  """Why XLA is applied per replica (`GAN.replica_compiled`) instead of around `strategy.run`:
  Keras `fit(jit_compile=True)` compiles the whole `strategy.run` and fails under Mirrored."""
  _, ds = batches(1, batch=8, steps=1)
  mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  gan = make(strategy=mirrored, jit=True)
  with pytest.raises(Exception, match="(?i)device"):
    keras.Model.fit(gan, ds, epochs=1, steps_per_epoch=1, verbose=0)


def test_ema_follows_recursion():
  _, ds = batches(1, batch=8, steps=3)
  decay = 0.8  # not 0.5: decay * ema + (1 - decay) * g must not be symmetric in ema and g
  gan = make(ema_decay=decay)
  ema = np_weights(gan.generator)
  np.testing.assert_allclose(ema[0], gan.generator_ema.weights[0].numpy())
  for _ in range(3):
    engine.fit(gan, ds.take(1), 1)
    ema = [decay * e + (1 - decay) * g for e, g in zip(ema, np_weights(gan.generator))]
  for e, v in zip(ema, gan.generator_ema.weights):
    np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-7)
  assert gan.sampler() is gan.generator_ema


def test_ema_follows_g_until_its_start_step_then_averages():
  """ema_start_step = 2: after G steps 1 and 2 the EMA is G itself; averaging starts at step 3."""
  _, ds = batches(1, batch=8, steps=4)
  decay = 0.8
  gan = make(ema_decay=decay, ema_start_step=2)
  ema = None
  for step in range(1, 5):
    engine.fit(gan, ds.skip(step - 1).take(1), 1)
    assert int(gan.global_step.numpy()) == step
    g = np_weights(gan.generator)
    ema = g if step <= 2 else [decay * e + (1 - decay) * w for e, w in zip(ema, g)]
    for e, v in zip(ema, gan.generator_ema.weights):
      np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-7, err_msg=f"step {step}")
  assert np.abs(gan.generator_ema.weights[0].numpy() - g[0]).max() > 1e-4  # averaging shows


def test_weight_clipping_bounds_every_d_variable():
  _, ds = batches(1, batch=8, steps=2)
  gan = make(loss="wasserstein", clip_value=0.01, lr=1.0)
  engine.fit(gan, ds, 2)
  for v in gan.discriminator.weights:
    assert np.max(np.abs(v.numpy())) <= 0.01 + 1e-7


class RecordsInputGradient(GAN):

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.seen = tf.Variable(tf.zeros([8, DIM]), trainable=False)

  def discriminator_round(self, real, labels, z, fake_labels, index):
    batch = self.discriminator_batch(real, labels, z, fake_labels, index)
    (real_grad,) = self.discriminator_step(batch, sources=[batch.real])
    self.seen.assign(real_grad)


def test_input_gradient_comes_from_the_pre_update_weights():
  _, ds = batches(1, batch=8, steps=1)
  gan = make(cls=RecordsInputGradient, loss="wasserstein", lr=0.5)
  w_before = gan.discriminator.weights[0].numpy()[:, 0]
  engine.fit(gan, ds, 1)
  # d/dx_i mean_j(-D(x_j)) = -w / B, with w before the update (it changes with lr=0.5).
  np.testing.assert_allclose(gan.seen.numpy(), np.tile(-w_before / 8, (8, 1)), rtol=1e-5)
  assert not np.allclose(gan.discriminator.weights[0].numpy()[:, 0], w_before)


def test_a_gradient_source_that_misses_the_loss_is_an_error():
  """A source must reach D's loss through make_real; one that does not (a separate tensor, as a
  source passed as `real` too becomes under per-replica XLA) raises instead of returning None."""
  gan = make(loss="wasserstein")
  rng = np.random.default_rng(11)
  real, fake = (tf.constant(rng.normal(size=(8, DIM)).astype("f4")) for _ in range(2))
  seed = tf.constant([1, 2])
  source = tf.identity(real)  # the same values, another tensor
  with pytest.raises(errors.ConfigError, match="make_real"):
    gan._discriminator_gradients(real, None, fake, None, seed, sources=[source])  # pylint: disable=protected-access
  _, (grad,), _ = gan._discriminator_gradients(  # pylint: disable=protected-access
      real, None, fake, None, seed, sources=[source], make_real=lambda x: x)
  w = gan.discriminator.weights[0].numpy()[:, 0]
  np.testing.assert_allclose(grad.numpy(), np.tile(-w / 8, (8, 1)), rtol=1e-5)  # d mean(-D) / dx


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_dis=0), "n_dis"),
    (dict(loss="hinj"), "hinge"),
    (dict(penalty="gp"), "wgan_gp"),
    (dict(clip_value=-1.0), "clip_value"),
    (dict(fake_weight=-1.0), "fake_weight"),
    (dict(ema_decay=1.5), "ema_decay"),
    (dict(conditional=True), "num_classes"),
])
def test_bad_hyperparameters_raise_clear_errors(kwargs, message):
  with pytest.raises(errors.ConfigError, match=message):
    make(**kwargs)


def test_batch_not_divisible_by_replicas():
  mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  with pytest.raises(errors.ConfigError, match="multiple of 2"):
    distribute.per_replica_batch(mirrored, 7)
  with pytest.raises(errors.ConfigError, match="Unknown strategy"):
    distribute.make_strategy("gpu")
