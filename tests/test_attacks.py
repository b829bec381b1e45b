"""tfadvgan.attacks: FGSM / PGD / random ablation / DAT targeted step / free-AT update."""
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import attacks, errors

SEED = tf.constant([11, -5], tf.int32)
SHAPE = (4, 3, 2, 1)


def _weights_and_inputs():
  """A fixed linear model's weights and a fixed batch: read-only constants from their own
  generator; a test that needs more random data makes its own generator."""
  rng = np.random.default_rng(0)
  w = rng.normal(size=SHAPE[1:]).astype(np.float32)
  x = rng.uniform(-0.5, 0.5, SHAPE).astype(np.float32)
  w.setflags(write=False)
  x.setflags(write=False)
  return w, x


W, X = _weights_and_inputs()


def _linear(w=W):
  w = tf.constant(w)
  return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])


def test_fgsm_linear_equals_sign_step_and_clips():
  eps = 0.1
  out = attacks.fgsm(X, _linear(), eps).numpy()
  np.testing.assert_allclose(out, X + eps * np.sign(W), atol=1e-7)
  # Near the range edge the result is clipped to [-1, 1].
  x_edge = np.where(W > 0, 0.95, -0.95).astype(np.float32) * np.ones(SHAPE, np.float32)
  out_edge = attacks.fgsm(x_edge, _linear(), eps).numpy()
  np.testing.assert_allclose(out_edge, np.sign(W) * np.ones(SHAPE), atol=0)
  unclipped = attacks.fgsm(x_edge, _linear(), eps, clip=False).numpy()
  np.testing.assert_allclose(unclipped, x_edge + eps * np.sign(W), atol=1e-6)


def test_fgsm_with_precomputed_grad_matches_loss_fn():
  loss_fn = lambda x: tf.reduce_sum(tf.square(x) * W, axis=[1, 2, 3])
  x = tf.constant(X)
  with tf.GradientTape() as tape:
    tape.watch(x)
    total = tf.reduce_mean(loss_fn(x))  # a mean: grad scale must not matter for the sign step
  grad = tape.gradient(total, x)
  a = attacks.fgsm(x, loss_fn, 0.05)
  b = attacks.fgsm(x, None, 0.05, grad=grad)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.allclose(a.numpy(), attacks.fgsm(x, _linear(), 0.05).numpy())
  with pytest.raises(errors.ConfigError, match="grad"):
    attacks.fgsm(x, None, 0.05)


def test_perturbation_is_constant_but_x_gets_gradient():
  x = tf.constant(X)
  with tf.GradientTape() as tape:
    tape.watch(x)
    total = tf.reduce_sum(attacks.fgsm(x, _linear(), 0.1) * 2.0)
  np.testing.assert_allclose(tape.gradient(total, x), np.full(SHAPE, 2.0))


def _sq_dist_loss(center):
  c = tf.constant(center)
  return lambda x: tf.reduce_sum(tf.square(x - c), axis=[1, 2, 3])


def test_pgd_stays_in_ball_and_range_and_increases_convex_loss():
  center = np.random.default_rng(1).uniform(-0.9, 0.9, SHAPE).astype(np.float32)
  loss_fn = _sq_dist_loss(center)
  x = np.clip(X * 1.9, -1, 1).astype(np.float32)  # some pixels near the range edge
  eps = 0.2
  clean = loss_fn(x).numpy()
  prev = clean
  for steps in range(1, 5):
    for random_start in (False, True):
      out = attacks.pgd(x, loss_fn, eps, steps, 0.08, random_start=random_start, seed=SEED).numpy()
      assert np.abs(out - x).max() <= eps + 1e-6
      assert out.min() >= -1 and out.max() <= 1
    out = attacks.pgd(x, loss_fn, eps, steps, 0.08).numpy()
    value = loss_fn(out).numpy()
    assert np.all(value > clean) and np.all(value >= prev - 1e-6)
    prev = value
  # On a linear loss one big step reaches the FGSM corner.
  np.testing.assert_allclose(attacks.pgd(X, _linear(), 0.1, 1, 0.5).numpy(),
                             attacks.fgsm(X, _linear(), 0.1).numpy(), atol=1e-7)


def test_pgd_random_start_is_seed_deterministic():
  loss_fn = _sq_dist_loss(np.zeros(SHAPE, np.float32))
  run = lambda seed: attacks.pgd(X, loss_fn, 0.1, 2, 0.01, random_start=True, seed=seed).numpy()
  np.testing.assert_array_equal(run(SEED), run(SEED))
  assert not np.allclose(run(SEED), run(tf.constant([12, -5])))
  assert not np.allclose(run(SEED), attacks.pgd(X, loss_fn, 0.1, 2, 0.01).numpy())
  with pytest.raises(errors.ConfigError, match="seed"):
    attacks.pgd(X, loss_fn, 0.1, 2, 0.01, random_start=True)


def test_pgd_random_start_draws_match_the_documented_formula():
  """With a zero gradient PGD stays at its random start: ``x + epsilon * U(-1, 1)`` per pixel
  (linf), and ``x + epsilon * r * d / ||d||_2`` (l2) with ``d ~ N(0, I)`` from the first half of
  the split seed and the per-example radius ``r ~ U[0, 1)`` from the second (NumPy norms)."""
  rng = np.random.default_rng(21)
  x = rng.uniform(-0.5, 0.5, (3, 4, 2, 1)).astype(np.float32)
  flat = lambda v: 0.0 * tf.reduce_sum(v, axis=[1, 2, 3])
  eps = 0.37
  linf = attacks.pgd(x, flat, eps, 1, 0.1, random_start=True, seed=SEED, clip=False).numpy()
  u = attacks.uniform(x.shape, SEED, tf.float32, -1.0, 1.0).numpy()
  np.testing.assert_allclose(linf, x + eps * u, rtol=0, atol=1e-6)
  l2 = attacks.pgd(x, flat, eps, 2, 0.1, random_start=True, seed=SEED, clip=False,
                   norm="l2").numpy()
  seeds = attacks.split_seed(SEED)
  d = attacks.normal(x.shape, seeds[0]).numpy()
  r = attacks.uniform([3, 1, 1, 1], seeds[1]).numpy()
  d_unit = d / np.sqrt((d.astype(np.float64) ** 2).sum(axis=(1, 2, 3), keepdims=True))
  np.testing.assert_allclose(l2, x + eps * r * d_unit, rtol=0, atol=1e-6)
  assert len(set(np.round(np.linalg.norm((l2 - x).reshape(3, -1), axis=1), 5))) == 3


def test_pgd_l2_ball():
  loss_fn = _sq_dist_loss(np.zeros(SHAPE, np.float32))
  out = attacks.pgd(X, loss_fn, 0.3, 4, 0.2, norm="l2", random_start=True, seed=SEED).numpy()
  norms = np.linalg.norm((out - X).reshape(4, -1), axis=1)
  assert np.all(norms <= 0.3 + 1e-6) and np.all(norms > 0.25)
  assert np.all(loss_fn(out).numpy() > loss_fn(X).numpy())


def test_gaussian_exact_budget_and_seed_determinism():
  eps = 0.03
  out = attacks.gaussian(X, eps, SEED).numpy()
  np.testing.assert_allclose(np.abs(out - X), eps, rtol=1e-4)
  np.testing.assert_array_equal(out, attacks.gaussian(X, eps, SEED).numpy())
  other = attacks.gaussian(X, eps, tf.constant([1, 2])).numpy()
  assert not np.array_equal(out, other)
  big = attacks.gaussian(np.zeros((64, 8, 8, 3), np.float32), 1.0, SEED).numpy()
  assert set(np.unique(big)) == {-1.0, 1.0} and abs(big.mean()) < 0.05


def test_random_helpers_distribution():
  u = attacks.uniform([20000], SEED, tf.float32, -2.0, 3.0).numpy()
  assert u.min() >= -2.0 and u.max() < 3.0 and abs(u.mean() - 0.5) < 0.05
  n = attacks.normal([20000], SEED).numpy()
  assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03
  assert not np.array_equal(attacks.split_seed(SEED)[0], attacks.split_seed(SEED)[1])


@pytest.mark.parametrize("step", ["sign", "raw", "l2"])
def test_targeted_one_step_moves_value_toward_target(step):
  w = W * 5.0  # |eps * w_i| > eps for many pixels, so the raw step must be clipped
  value_fn = _linear(w)
  v = value_fn(X).numpy()
  target = v + np.array([1.0, -1.0, 2.0, -0.5], np.float32)
  eps = 0.05
  out = attacks.targeted_one_step(X, value_fn, target, eps, direction=step).numpy()
  delta = out - X
  assert np.abs(delta).max() <= eps + 1e-7
  moved = value_fn(out).numpy() - v
  np.testing.assert_array_equal(np.sign(moved), np.sign(target - v))
  if step == "sign":
    np.testing.assert_allclose(delta, eps * np.sign(target - v)[:, None, None, None] * np.sign(w),
                               atol=1e-7)
  elif step == "raw":
    ref = np.clip(eps * np.sign(target - v)[:, None, None, None] * w, -eps, eps)
    np.testing.assert_allclose(delta, ref, atol=1e-7)
    assert np.sum(np.isclose(np.abs(delta), eps)) < delta.size  # not just a sign step
  else:
    np.testing.assert_allclose(np.linalg.norm(delta.reshape(4, -1), axis=1), eps, rtol=1e-5)


def test_targeted_raw_step_is_batch_size_independent():
  value_fn = lambda x: tf.reduce_sum(tf.square(x) * W, axis=[1, 2, 3])
  full = attacks.targeted_one_step(X, value_fn, 0.0, 1.0, direction="raw", clip=False).numpy()
  one = attacks.targeted_one_step(X[:1], value_fn, 0.0, 1.0, direction="raw", clip=False).numpy()
  np.testing.assert_allclose(full[:1], one, atol=1e-7)


def test_free_delta_update_matches_numpy():
  rng = np.random.default_rng(2)
  delta = rng.uniform(-0.03, 0.03, SHAPE).astype(np.float32)
  grad = rng.normal(size=SHAPE).astype(np.float32)
  grad[0, 0, 0, 0] = 0.0
  out = attacks.free_delta_update(delta, grad, 0.02, 0.03).numpy()
  np.testing.assert_allclose(out, np.clip(delta + 0.02 * np.sign(grad), -0.03, 0.03), atol=1e-7)
  init = attacks.free_delta_init(SHAPE, 0.03, SEED).numpy()
  assert np.abs(init).max() <= 0.03 and np.abs(init).max() > 0.02


def test_free_delta_init_kinds_and_free_adversarial_input():
  eps = 0.03
  uniform = attacks.free_delta_init(SHAPE, eps, SEED).numpy()
  normal = attacks.free_delta_init(SHAPE, eps, SEED, kind="clamped_normal").numpy()
  # The release's init: N(0, 1) clamped to the ball, so almost every entry sits on a bound
  # (P(|z| <= 0.03) = 0.024 for a standard normal), and the rest is the normal draw itself.
  assert np.abs(normal).max() <= eps
  on_bound = np.isclose(np.abs(normal), eps)
  assert on_bound.mean() > 0.9 and not np.array_equal(normal, uniform)
  assert set(np.unique(np.sign(normal))) == {-1.0, 1.0}
  for kind in ("zeros", "uniform", "clamped_normal"):
    np.testing.assert_array_equal(attacks.free_delta_init(SHAPE, 0.0, SEED, kind=kind), 0.0)
  np.testing.assert_array_equal(attacks.free_delta_init(SHAPE, eps, SEED, kind="zeros"), 0.0)
  with pytest.raises(errors.ConfigError, match="delta init 'gauss'.*clamped_normal"):
    attacks.free_delta_init(SHAPE, eps, SEED, kind="gauss")
  # What D sees: clip(x + delta, -1, 1); the gradient for delta passes the clip only when asked.
  x = tf.constant([[0.99, -1.0, 0.2]])
  delta = tf.constant([[0.05, -0.05, 0.05]])
  for gradient, want_grad in (("straight_through", [1.0, 1.0, 1.0]),
                              ("through_clip", [0.0, 0.0, 1.0])):
    with tf.GradientTape() as tape:
      tape.watch(delta)
      seen = attacks.free_adversarial_input(x, delta, gradient=gradient)
      total = tf.reduce_sum(seen)
    np.testing.assert_allclose(seen.numpy(), [[1.0, -1.0, 0.25]], atol=1e-7)
    np.testing.assert_array_equal(tape.gradient(total, delta).numpy(), [want_grad])
  np.testing.assert_allclose(attacks.free_adversarial_input(x, delta, clip=False).numpy(),
                             [[1.04, -1.05, 0.25]], atol=1e-7)


def test_attacks_compile_with_xla():
  loss_fn = _sq_dist_loss(np.full(SHAPE, 0.1, np.float32))

  def run(x, seed):
    return [
        attacks.fgsm(x, loss_fn, 0.1),
        attacks.pgd(x, loss_fn, 0.1, 3, 0.04, random_start=True, seed=seed),
        attacks.pgd(x, loss_fn, 0.1, 2, 0.04, random_start=True, seed=seed, norm="l2"),
        attacks.gaussian(x, 0.1, seed),
        attacks.targeted_one_step(x, loss_fn, 0.5, 0.1, direction="raw"),
        attacks.free_delta_update(x * 0.1, x, 0.02, 0.03),
        attacks.free_delta_init(SHAPE, 0.03, seed),
        attacks.get("none")(x, loss_fn, 0.1),
    ]

  compiled = tf.function(run, jit_compile=True)(tf.constant(X), SEED)
  for c, e in zip(compiled, run(tf.constant(X), SEED)):
    np.testing.assert_allclose(c, e, atol=1e-6)


def test_registry_and_errors():
  loss_fn = _linear()
  np.testing.assert_array_equal(
      attacks.get("fgsm")(X, loss_fn, 0.1, seed=SEED, num_steps=3),
      attacks.fgsm(X, loss_fn, 0.1))
  np.testing.assert_array_equal(attacks.get("gaussian")(X, None, 0.1, seed=SEED),
                                attacks.gaussian(X, 0.1, SEED))
  np.testing.assert_array_equal(
      attacks.get("pgd")(X, loss_fn, 0.1, num_steps=2, step_size=0.05, grad=None),
      attacks.pgd(X, loss_fn, 0.1, 2, 0.05))
  np.testing.assert_array_equal(attacks.get(None)(X, loss_fn, 0.1), X)
  np.testing.assert_array_equal(attacks.get("none")(X, loss_fn, 0.1), X)
  with pytest.raises(errors.ConfigError, match="fgsm, gaussian, none, pgd"):
    attacks.get("bim")
  with pytest.raises(errors.ConfigError, match="unknown arguments"):
    attacks.get("fgsm")(X, loss_fn, 0.1, epsilon_scale=2)
  with pytest.raises(errors.ConfigError, match="epsilon"):
    attacks.fgsm(X, loss_fn, -0.1)
  with pytest.raises(errors.ConfigError, match="epsilon"):
    attacks.gaussian(X, -1.0, SEED)
  with pytest.raises(errors.ConfigError, match="num_steps"):
    attacks.pgd(X, loss_fn, 0.1, 0, 0.01)
  with pytest.raises(errors.ConfigError, match="norm"):
    attacks.pgd(X, loss_fn, 0.1, 1, 0.01, norm="l1")
  with pytest.raises(errors.ConfigError, match="direction must be one of"):
    attacks.targeted_one_step(X, loss_fn, 0.0, 0.1, direction="newton")
