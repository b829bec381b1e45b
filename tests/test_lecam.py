"""LeCam regularisation (`tfadvgan.gans.lecam`): the term against hand-computed values, the EMA
of the anchors, whole D and G updates against a NumPy reference on linear G and D, and the anchors
kept by checkpoints (also restored onto two replicas)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import LinearD, LinearG, batches, sigmoid  # pylint: disable=g-bad-import-order
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans import lecam
from tfadvgan.gans.base import GAN
from tfadvgan.training import checkpoints
from tfadvgan.training import engine


def test_term_by_hand():
  real, fake = tf.constant([1.5, -0.5, 0.25]), tf.constant([-2.0, 0.75, 0.5])
  anchor_real, anchor_fake = 0.5, -0.25
  # Reals against the fake anchor -0.25: gaps 1.75, -0.25, 0.5; fakes: 0.5 - f = 2.5, -0.25, 0.
  one_sided = lecam.term(real, fake, anchor_real, anchor_fake).numpy()
  np.testing.assert_allclose(one_sided, [1.75**2 + 2.5**2, 0.0, 0.5**2 + 0.0], rtol=1e-6)
  both = lecam.term(real, fake, anchor_real, anchor_fake, one_sided=False).numpy()
  np.testing.assert_allclose(both, [1.75**2 + 2.5**2, 0.25**2 + 0.25**2, 0.5**2], rtol=1e-6)


def test_anchors_follow_the_ema_after_start_step():
  state = lecam.LeCam(weight=0.3, decay=0.9, start_step=2)
  means = [(1.0, -1.0), (2.0, 0.5), (-3.0, 4.0), (0.5, 0.25)]
  expected = np.zeros(2)
  for step, mean in enumerate(means):
    assert float(state.active(step)) == float(step >= 2 and step > 0)
    decay = 0.0 if step < 2 else 0.9  # before start_step the anchors copy the batch means
    expected = decay * expected + (1 - decay) * np.array(mean)
    np.testing.assert_allclose(state.update(*mean, step).numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(state.anchors.numpy(), expected, rtol=1e-6)
  assert int(state.updates.numpy()) == 4
  fresh = lecam.LeCam(weight=0.3)
  assert float(fresh.active(5)) == 0.0  # no D output folded in yet


def test_anchors_take_global_means_and_agree_on_every_replica():
  """Replica r sees means (1 + 2r, -3r): the anchors are the global means on both replicas."""
  strategy = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  with strategy.scope():
    state = lecam.LeCam(weight=0.3, decay=0.75)

  def step(real_mean, fake_mean):
    rid = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
    return state.update(real_mean + 2.0 * rid, fake_mean - 3.0 * rid, 5)

  strategy.run(tf.function(step), args=(1.0, 0.5))  # fresh: decay 0
  strategy.run(tf.function(step), args=(-2.0, 4.0))
  expected = 0.75 * np.array([2.0, -1.0]) + 0.25 * np.array([-1.0, 2.5])
  for component in state.anchors.values:
    np.testing.assert_allclose(component.numpy(), expected, rtol=1e-6)


def make(strategy=None, lr=0.1, g_lr=0.07, **kwargs):
  strategy = strategy or tf.distribute.get_strategy()
  keras.utils.set_random_seed(3)
  with strategy.scope():
    gan = GAN(LinearG(), LinearD(), **kwargs)
    gan.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(g_lr))
  return gan


def numpy_steps(gan, arrays, steps, n_dis, lr, g_lr, weight, decay, start, one_sided):
  """Non-saturating loss + weight * LeCam on linear G and D, update by update; returns
  (D weights, G weights, the anchors after each D update)."""
  (k, b), (w, c) = [v.numpy() for v in gan.generator.weights], [v.numpy()
                                                                for v in gan.discriminator.weights]
  anchors, updates, batch, history = np.zeros(2), 0, 8, []
  for step in range(steps):
    rows = slice(step * batch, (step + 1) * batch)
    for j in range(n_dis):
      real, fake = arrays["images"][rows, j], arrays["z_d"][rows, j] @ k + b
      t_r, t_f = (real @ w + c)[:, 0], (fake @ w + c)[:, 0]
      on = float(updates > 0 and step >= start)
      gap_r, gap_f = t_r - anchors[1], anchors[0] - t_f
      if one_sided:
        gap_r, gap_f = np.maximum(gap_r, 0), np.maximum(gap_f, 0)
      # d/dt_r of gap_r^2 is 2 gap_r; d/dt_f of gap_f^2 is -2 gap_f.
      d_r = -sigmoid(-t_r) + weight * on * 2 * gap_r
      d_f = sigmoid(t_f) - weight * on * 2 * gap_f
      w = w - lr * (d_r[:, None] * real + d_f[:, None] * fake).mean(0)[:, None]
      c = c - lr * (d_r + d_f).mean(0)
      rate = 0.0 if (updates == 0 or step < start) else decay
      anchors = rate * anchors + (1 - rate) * np.array([t_r.mean(), t_f.mean()])
      updates += 1
      history.append(anchors)
    z = arrays["z_g"][rows]
    t_g = (z @ k + b) @ w + c
    g_x = -sigmoid(-t_g) * w[:, 0][None] / len(z)
    k, b = k - g_lr * z.T @ g_x, b - g_lr * g_x.sum(0)
  return (w, c), (k, b), np.array(history)


@pytest.mark.parametrize("start,one_sided", [(0, True), (1, False)])
def test_updates_match_numpy(start, one_sided):
  steps, n_dis, lr, g_lr, weight, decay = 3, 2, 0.5, 0.3, 0.7, 0.8
  arrays, ds = batches(n_dis, batch=8, steps=steps, seed=4)
  gan = make(lr=lr, g_lr=g_lr, n_dis=n_dis, lecam_weight=weight, lecam_decay=decay,
             lecam_start_step=start, lecam_one_sided=one_sided)
  (w, c), (k, b), anchors = numpy_steps(gan, arrays, steps, n_dis, lr, g_lr, weight, decay, start,
                                        one_sided)
  for _ in range(steps):
    logs = engine.fit(gan, ds.skip(int(gan.global_step.numpy())).take(1), 1)
  assert logs["lecam"] > 0.01
  for got, want in zip(gan.discriminator.weights + gan.generator.weights, [w, c, k, b]):
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gan.lecam.anchors.numpy(), anchors[-1], rtol=1e-5, atol=1e-6)
  # Logged: the mean over the D updates since the trackers' reset (none here), like every value.
  np.testing.assert_allclose([logs["lecam_anchor_real"], logs["lecam_anchor_fake"]],
                             anchors.mean(0), rtol=1e-5, atol=1e-6)


def test_knobs_are_checked():
  with pytest.raises(errors.ConfigError, match="GAN.lecam_decay"):
    make(lecam_weight=0.3, lecam_decay=1.0)
  with pytest.raises(errors.ConfigError, match="GAN.lecam_weight"):
    make(lecam_weight=-0.1)
  assert make().lecam is None and make().state_variables() == []


def test_anchors_are_saved_and_restored_also_onto_two_replicas(tmp_path):
  _, ds = batches(1, batch=8, steps=2, seed=6)
  gan = make(lecam_weight=0.3, lecam_decay=0.6)
  engine.fit(gan, ds, 2)
  saved = gan.lecam.anchors.numpy()
  assert np.abs(saved).min() > 1e-3 and int(gan.lecam.updates.numpy()) == 2
  path = checkpoints.make_manager(gan, str(tmp_path)).save()
  fresh = make(lecam_weight=0.3, lecam_decay=0.6)
  assert np.abs(fresh.lecam.anchors.numpy()).max() == 0
  checkpoints.restore(checkpoints.make_manager(fresh, str(tmp_path)), path)
  np.testing.assert_array_equal(fresh.lecam.anchors.numpy(), saved)
  assert int(fresh.lecam.updates.numpy()) == 2
  two = make(strategy=distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
             lecam_weight=0.3, lecam_decay=0.6)
  checkpoints.restore(checkpoints.make_manager(two, str(tmp_path)), path)
  for component in two.lecam.anchors.values:
    np.testing.assert_array_equal(component.numpy(), saved)
  assert [int(v.numpy()) for v in two.lecam.updates.values] == [2, 2]
