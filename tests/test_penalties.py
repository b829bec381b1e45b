"""tfadvgan.penalties: closed forms on linear / quadratic critics, double backprop, XLA."""
import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import attacks, errors, penalties

SEED = tf.constant([3, 7], tf.int32)
SHAPE = (4, 2, 3, 1)  # [B, H, W, C]


def _linear(w, b=0.5):
  w = tf.constant(w, tf.float32)
  return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]) + b


def _w_with_norm(norm):
  w = np.random.default_rng(0).normal(size=SHAPE[1:]).astype(np.float32)
  return w * norm / np.linalg.norm(w)


def _batches():
  rng = np.random.default_rng(1)
  real = tf.constant(rng.uniform(-1, 1, SHAPE), tf.float32)
  fake = tf.constant(rng.uniform(-1, 1, SHAPE), tf.float32)
  return real, fake


def test_gp_lp_r1_on_linear_critic():
  real, fake = _batches()
  d3 = _linear(_w_with_norm(3.0))
  np.testing.assert_allclose(penalties.wgan_gp(d3, real, fake, seed=SEED), [4.0] * 4, rtol=1e-5)
  np.testing.assert_allclose(penalties.wgan_lp(d3, real, fake, seed=SEED), [4.0] * 4, rtol=1e-5)
  np.testing.assert_allclose(penalties.r1(d3, real, fake), [9.0] * 4, rtol=1e-5)
  d_half = _linear(_w_with_norm(0.5))
  np.testing.assert_allclose(penalties.wgan_gp(d_half, real, fake, seed=SEED), [0.25] * 4,
                             rtol=1e-5)
  np.testing.assert_allclose(penalties.wgan_lp(d_half, real, fake, seed=SEED), [0.0] * 4, atol=0)
  np.testing.assert_allclose(penalties.r1(d_half, real, fake), [0.25] * 4, rtol=1e-5)
  assert penalties.wgan_gp(d3, real, fake, seed=SEED, target=3.0).numpy().max() < 1e-8


def test_gp_lp_r1_on_quadratic_critic_use_interpolates():
  a = 0.75
  d_fn = lambda x: 0.5 * a * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])  # grad = a x
  real, fake = _batches()
  u = attacks.uniform([SHAPE[0], 1, 1, 1], SEED).numpy()
  x_hat = real.numpy() + u * (fake.numpy() - real.numpy())
  norm = a * np.sqrt((x_hat ** 2).sum(axis=(1, 2, 3)))
  assert norm.min() < 1 < norm.max()  # both branches of the one-sided LP are exercised
  np.testing.assert_allclose(penalties.wgan_gp(d_fn, real, fake, seed=SEED), (norm - 1) ** 2,
                             rtol=1e-5)
  np.testing.assert_allclose(penalties.wgan_lp(d_fn, real, fake, seed=SEED),
                             np.maximum(0, norm - 1) ** 2, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(penalties.r1(d_fn, real, fake),
                             a ** 2 * (real.numpy() ** 2).sum(axis=(1, 2, 3)), rtol=1e-5)
  other = penalties.wgan_gp(d_fn, real, fake, seed=tf.constant([4, 7]))
  assert not np.allclose(other, (norm - 1) ** 2)


def test_alp_on_linear_critic_aligns_with_w():
  w = _w_with_norm(3.0)
  d_fn = _linear(w)
  real, fake = _batches()
  np.testing.assert_allclose(penalties.wgan_alp(d_fn, real, fake, seed=SEED), [4.0] * 4,
                             rtol=1e-4)
  d = penalties.alp_direction(d_fn, real, SEED, num_power_iterations=1).numpy()
  cos = (d * w).sum(axis=(1, 2, 3)) / (np.linalg.norm(w) * np.linalg.norm(d.reshape(4, -1), axis=1))
  np.testing.assert_allclose(np.abs(cos), 1.0, atol=1e-5)
  # Below the Lipschitz bound the one-sided penalty vanishes.
  small = penalties.wgan_alp(_linear(_w_with_norm(0.8)), real, fake, seed=SEED)
  np.testing.assert_allclose(small, 0.0, atol=0)


def test_alp_uses_epsilon_range_and_power_iteration():
  # D(x) = ||x||^2 / 2 at x = 0: ratio |D(0) - D(r)| / ||r|| = ||r|| / 2 = eps / 2.
  d_fn = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])
  zeros = tf.zeros(SHAPE)
  np.testing.assert_allclose(
      penalties.wgan_alp(d_fn, zeros, zeros, seed=SEED, epsilon_range=(4.0, 4.0)), [1.0] * 4,
      rtol=1e-5)
  gin.parse_config("penalty_wgan_alp.epsilon_range = (4.0, 4.0)")  # the knob is gin-bindable
  np.testing.assert_allclose(penalties.get("wgan_alp")(d_fn, zeros, zeros, seed=SEED), [1.0] * 4,
                             rtol=1e-5)
  gin.clear_config()
  p = penalties.wgan_alp(d_fn, zeros, zeros, seed=SEED, epsilon_range=(2.0, 6.0)).numpy()
  assert np.all(p >= 0) and np.all(p < 4.0) and np.ptp(p) > 0
  # Without power iteration the random direction would not align: compare with the random start.
  w = _w_with_norm(3.0)
  d0 = penalties.alp_direction(_linear(w), zeros, SEED, num_power_iterations=1).numpy()
  assert np.allclose(np.abs((d0 * w).sum(axis=(1, 2, 3))), 3.0, rtol=1e-4)
  with pytest.raises(errors.ConfigError, match="num_power_iterations"):
    penalties.wgan_alp(d_fn, zeros, zeros, seed=SEED, num_power_iterations=0)


def _mlp_critic(dtype=tf.float64, scale=1.0):
  rng = np.random.default_rng(2)
  kernel = tf.Variable(rng.normal(size=(3, 5)) * scale, dtype=dtype)
  v = tf.constant(3 * rng.normal(size=(5,)) / scale, dtype)

  def d_fn(x):
    return tf.reduce_sum(tf.tanh(x @ kernel) * v, axis=1)

  return kernel, d_fn


@pytest.mark.parametrize("name", ["wgan_gp", "wgan_lp", "r1"])
def test_penalty_weight_gradient_matches_finite_differences(name):
  kernel, d_fn = _mlp_critic()
  rng = np.random.default_rng(3)
  real = tf.constant(rng.uniform(-1, 1, (6, 3)))
  fake = tf.constant(rng.uniform(-1, 1, (6, 3)))
  penalty_fn = penalties.get(name)

  def value():
    return tf.reduce_sum(penalty_fn(d_fn, real, fake, seed=SEED))

  with tf.GradientTape() as tape:
    total = value()
  grad = tape.gradient(total, kernel)
  assert grad is not None and np.abs(grad.numpy()).max() > 1e-3
  base = kernel.numpy()
  fd = np.zeros_like(base)
  h = 1e-6
  for idx in np.ndindex(*base.shape):
    for sign in (1, -1):
      k = base.copy()
      k[idx] += sign * h
      kernel.assign(k)
      fd[idx] += sign * value().numpy() / (2 * h)
  kernel.assign(base)
  np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-5, atol=1e-7)


def test_penalties_compile_with_xla_and_backprop():
  # Small kernel: ALP probes x + xi * d with xi = 10; keep tanh out of saturation, where XLA's
  # tanh approximation and TF's differ in the (tiny) gradients that set the ALP direction.
  kernel, d_fn = _mlp_critic(tf.float32, scale=0.1)
  rng = np.random.default_rng(4)
  real = tf.constant(rng.uniform(-1, 1, (4, 3)), tf.float32)
  fake = tf.constant(rng.uniform(-1, 1, (4, 3)), tf.float32)
  names = ["wgan_gp", "wgan_lp", "r1", "wgan_alp", "none"]

  def run(real, fake, seed):
    out = []
    for name in names:
      with tf.GradientTape() as tape:
        p = penalties.get(name)(d_fn, real, fake, seed=seed)
        total = tf.reduce_sum(p)
      g = tape.gradient(total, kernel, unconnected_gradients="zero")
      out += [p, g]
    return out

  compiled = tf.function(run, jit_compile=True)(real, fake, SEED)
  eager = run(real, fake, SEED)
  for name, c, e in zip([n for n in names for _ in (0, 1)], compiled, eager):
    np.testing.assert_allclose(c, e, rtol=1e-4, atol=1e-5, err_msg=name)
  for i in (1, 3, 5, 7):  # every penalty (ALP included) reaches D's weights
    assert np.abs(eager[i]).max() > 1e-3, names[i // 2]
  assert np.all(eager[8] == 0) and eager[8].shape == (4,)


def test_clip_weights_bounds_values():
  tfv = tf.Variable([[-0.5, 0.003], [0.2, -0.001]])
  kv = keras.Variable(np.array([1.0, -2.0, 0.005], np.float32))
  penalties.clip_weights([tfv, kv], 0.01)
  np.testing.assert_allclose(tfv.numpy(), [[-0.01, 0.003], [0.01, -0.001]])
  np.testing.assert_allclose(keras.ops.convert_to_numpy(kv), [0.01, -0.01, 0.005])
  with pytest.raises(errors.ConfigError, match="clip_value"):
    penalties.clip_weights([tfv], 0.0)


def test_get_names_and_errors():
  assert penalties.get(None) is penalties.none
  assert penalties.get("none") is penalties.none
  assert penalties.get("r1") is penalties.r1
  with pytest.raises(errors.ConfigError, match="r1.*wgan_alp.*wgan_gp.*wgan_lp"):
    penalties.get("gp")
  real, fake = _batches()
  with pytest.raises(errors.ConfigError, match="seed"):
    penalties.wgan_gp(_linear(_w_with_norm(1.0)), real, fake)
