"""tfadvgan.losses: per-example GAN losses (DAT Eq. 2 form) and class terms vs NumPy references."""
import numpy as np
import pytest
import scipy.special as sp
import tensorflow as tf

from tfadvgan import errors, losses

T = np.array([-3.0, -0.5, 0.0, 0.7, 2.5], np.float32)


def _np_softplus(t):
  return np.logaddexp(0.0, t)


# name -> (g1, g2, g) NumPy references.
REFERENCES = {
    "non_saturating": (lambda t: -_np_softplus(-t), lambda t: -_np_softplus(t),
                       lambda t: _np_softplus(-t)),
    "minimax": (lambda t: -_np_softplus(-t), lambda t: -_np_softplus(t),
                lambda t: -_np_softplus(t)),
    "hinge": (lambda t: np.minimum(0, t - 1), lambda t: np.minimum(0, -t - 1), lambda t: -t),
    "wasserstein": (lambda t: t, lambda t: -t, lambda t: -t),
    "least_squares": (lambda t: -0.5 * (t - 1) ** 2, lambda t: -0.5 * t ** 2,
                      lambda t: 0.5 * (t - 1) ** 2),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_loss_values_match_numpy(name):
  loss = losses.get(name)
  g1, g2, g = REFERENCES[name]
  t = tf.constant(T)
  np.testing.assert_allclose(loss.g1(t), g1(T.astype(np.float64)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(loss.g2(t), g2(T.astype(np.float64)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(loss.g(t), g(T.astype(np.float64)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(loss.d_real(t), -g1(T.astype(np.float64)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(loss.d_fake(t), -g2(T.astype(np.float64)), rtol=1e-6, atol=1e-6)
  assert loss.g(t).shape == (5,)


def test_vanilla_matches_log_sigmoid_form():
  """-softplus(-t) = log D and -softplus(t) = log(1 - D) with D = sigmoid(t)."""
  loss = losses.get("non_saturating")
  d = sp.expit(T.astype(np.float64))
  np.testing.assert_allclose(loss.g1(T), np.log(d), rtol=1e-5)
  np.testing.assert_allclose(loss.g2(T), np.log1p(-d), rtol=1e-5)
  np.testing.assert_allclose(loss.g(T), -np.log(d), rtol=1e-5)
  np.testing.assert_allclose(losses.get("minimax").g(T), np.log1p(-d), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_stable_at_large_logits(name):
  loss = losses.get(name)
  t = tf.constant([-100.0, 100.0])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(t)
    outs = [loss.g1(t), loss.g2(t), loss.g(t), loss.d_real(t), loss.d_fake(t)]
  g1, g2, g = REFERENCES[name]
  t64 = np.array([-100.0, 100.0])
  for out, ref in zip(outs[:3], (g1, g2, g)):
    np.testing.assert_allclose(out, ref(t64), rtol=1e-6, atol=1e-30)
  for out in outs:
    assert np.all(np.isfinite(out))
    assert np.all(np.isfinite(tape.gradient(out, t)))


def test_get_passes_instances_and_rejects_unknown():
  loss = losses.get("hinge")
  assert losses.get(loss) is loss
  with pytest.raises(errors.ConfigError, match="least_squares.*minimax.*wasserstein"):
    losses.get("vanilla")


def test_class_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 5)).astype(np.float32) * 3
  labels = np.array([0, 4, 2, 2], np.int32)
  ref = -sp.log_softmax(logits.astype(np.float64), axis=-1)[np.arange(4), labels]
  np.testing.assert_allclose(losses.class_cross_entropy(logits, labels), ref, rtol=1e-5)


def test_kl_to_uniform_both_directions():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 6)) * 2
  p = sp.softmax(logits, axis=-1)
  u = np.full_like(p, 1 / 6)
  # scipy.special.rel_entr(a, b) = a log(a / b).
  ref_u_p = sp.rel_entr(u, p).sum(-1)
  ref_p_u = sp.rel_entr(p, u).sum(-1)
  np.testing.assert_allclose(losses.kl_to_uniform(tf.constant(logits, tf.float32)), ref_u_p,
                             rtol=1e-5)
  np.testing.assert_allclose(
      losses.kl_to_uniform(tf.constant(logits, tf.float32), direction="uniform_to_p"),
      -np.log(6) - np.log(p).mean(-1), rtol=1e-5)
  np.testing.assert_allclose(
      losses.kl_to_uniform(tf.constant(logits, tf.float32), direction="p_to_uniform"), ref_p_u,
      rtol=1e-5)
  assert not np.allclose(ref_u_p, ref_p_u)
  flat = tf.fill([2, 6], 0.3)
  for direction in losses.KL_DIRECTIONS:
    np.testing.assert_allclose(losses.kl_to_uniform(flat, direction=direction), 0.0, atol=1e-6)
  with pytest.raises(errors.ConfigError, match="p_to_uniform"):
    losses.kl_to_uniform(flat, direction="forward")


def test_losses_compile_with_xla():
  loss = losses.get("hinge")

  @tf.function(jit_compile=True)
  def f(t, logits, labels):
    return (loss.d_real(t) + loss.d_fake(t) + loss.g(t) + losses.class_cross_entropy(logits, labels)
            + losses.kl_to_uniform(logits, direction="p_to_uniform"))

  t = tf.constant([0.5, -2.0])
  logits = tf.constant([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  labels = tf.constant([2, 1])
  expected = (loss.d_real(t) + loss.d_fake(t) + loss.g(t)
              + losses.class_cross_entropy(logits, labels)
              + losses.kl_to_uniform(logits, direction="p_to_uniform"))
  np.testing.assert_allclose(f(t, logits, labels), expected, rtol=1e-6)
