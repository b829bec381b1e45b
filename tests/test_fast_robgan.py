"""Fast-RobGAN (thesis Alg. 2, Eqs. 3.1-3.2, Eq. 4.1) on linear models with an auxiliary-classifier
head, checked against NumPy: the free-AT replays and the persistent delta, the KL term, the G loss,
the learning-rate anneal, per-replica delta under MirroredStrategy, checkpoints and errors."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import (AC_DIM as DIM, B, CLASSES, LinearACD, LinearACG,
                     ac_arrays as arrays, ac_dataset as dataset, d_params, make_ac as make, onehot,
                     sigmoid, softmax)
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans.fast_robgan import FastRobGAN
from tfadvgan.optimizers import TrainStepSchedule
from tfadvgan.gans import sampling
from tfadvgan import losses
from tfadvgan import models
from tfadvgan.training import checkpoints
from tfadvgan.training import engine
from tfadvgan.training import run as loop
from tfadvgan import optimizers

EPS, TAU = 0.05, 0.03  # tau != eps so that the step size is visibly the one used


def make_fast(strategy=None, lr=0.1, g_lr=0.05, **kwargs):
  kwargs.setdefault("batch_size", B)
  kwargs.setdefault("loss", "hinge")
  kwargs.setdefault("epsilon", EPS)
  kwargs.setdefault("step_size", TAU)
  return make(cls=FastRobGAN, strategy=strategy, lr=lr, g_lr=g_lr, **kwargs)


def mirrored():
  return distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])


def delta_of(gan):
  return gan.delta_state().global_value().numpy().astype(np.float64)


def g_params(gan):
  return [p.numpy().astype(np.float64) for p in gan.generator.weights]


# ------------------------------------------------------------------ NumPy reference
def np_kl(logits, direction):
  """KL between softmax(logits) and U, from the definitions (not the closed forms)."""
  p = softmax(logits)
  u = np.full_like(p, 1.0 / CLASSES)
  if direction == "uniform_to_p":
    return np.sum(u * np.log(u / p), -1)
  return np.sum(p * np.log(p / u), -1)


def np_kl_grad(logits, direction):
  """d KL / d logits."""
  p = softmax(logits)
  if direction == "uniform_to_p":
    return p - 1.0 / CLASSES
  log_p = np.log(p)
  return p * (log_p - np.sum(p * log_p, -1, keepdims=True))


def np_adv_grads(loss, t_r, t_f):
  """d/dt of the per-example D terms on real and fake logits."""
  if loss == "hinge":  # max(0, 1 - t_r) + max(0, 1 + t_f)
    return -(t_r < 1.0).astype(np.float64), (t_f > -1.0).astype(np.float64)
  return -sigmoid(-t_r), sigmoid(t_f)  # softplus(-t_r) + softplus(t_f)


def np_replay(params, delta, x, y, fake, y_f, lr, eps, tau, loss="hinge", cw=1.0, klw=1.0,
              kl_direction="uniform_to_p", delta_gradient="straight_through"):
  """One replay of Alg. 2 (rows 8-12): SGD step of D on clip(x + delta, -1, 1) and the fakes, then
  delta <- clip(delta + tau * sign(d loss / d delta), -eps, eps), both from the same gradients.
  d loss / d delta is the gradient at the clipped input (the release's leaf tensor), or, with
  "through_clip", that gradient masked to where the clip passes it."""
  w, c, v, b = params
  n = len(x)
  raw = x + delta
  x_adv = np.clip(raw, -1.0, 1.0)
  inside = (raw >= -1.0) & (raw <= 1.0)  # the clip passes the gradient only inside [-1, 1]
  if delta_gradient == "straight_through":
    inside = np.ones_like(inside)
  t_r, t_f = x_adv @ w[:, 0] + c[0], fake @ w[:, 0] + c[0]
  g_tr, g_tf = np_adv_grads(loss, t_r, t_f)
  g_lr = cw * (softmax(x_adv @ v + b) - onehot(y))
  g_lf = klw * np_kl_grad(fake @ v + b, kl_direction)
  grad_delta = inside * (g_tr[:, None] * w[:, 0][None] + g_lr @ v.T) / n
  new = [w - lr * ((x_adv.T @ g_tr + fake.T @ g_tf) / n)[:, None],
         c - lr * (g_tr.sum() + g_tf.sum()) / n,
         v - lr * (x_adv.T @ g_lr + fake.T @ g_lf) / n,
         b - lr * (g_lr.sum(0) + g_lf.sum(0)) / n]
  return new, np.clip(delta + tau * np.sign(grad_delta), -eps, eps)


def np_g_update(params, gen, z, y_g, lr, alpha, loss="hinge"):
  """One SGD step of G on -D^b(x_f) - alpha log p(y_f | x_f) (hinge) or on softplus(-D^b(x_f))
  + alpha CE (the original loss)."""
  w, c, v, b = params
  k, bg = gen
  x_g = z @ k + bg
  t = x_g @ w[:, 0] + c[0]
  g_t = -np.ones_like(t) if loss == "hinge" else -sigmoid(-t)
  g_x = (g_t[:, None] * w[:, 0][None] + alpha * (softmax(x_g @ v + b) - onehot(y_g)) @ v.T) / len(z)
  per_example = (-t if loss == "hinge" else np.logaddexp(0, -t)) - alpha * np.log(
      softmax(x_g @ v + b)[np.arange(len(z)), y_g])
  return [k - lr * z.T @ g_x, bg - lr * g_x.sum(0)], per_example


def np_train_step(gan, data, lr, replays=2, **kw):
  """Reference for one train step (n_dis = 1): D replays then the G step. Returns the D params and
  delta after every replay, and the G params."""
  params, gen, delta = d_params(gan), g_params(gan), delta_of(gan)
  x, y = data["images"][:, 0].astype(np.float64), data["labels"][:, 0]
  k, bg = gen
  fake = data["z_d"][:, 0].astype(np.float64) @ k + bg
  history = []
  for _ in range(replays):
    params, delta = np_replay(params, delta, x, y, fake, data["y_d"][:, 0], lr, **kw)
    history.append(([p.copy() for p in params], delta.copy()))
  return history


# ------------------------------------------------------------------ the free-AT replays
@pytest.mark.parametrize("loss, kl_direction, kl_weight, delta_gradient", [
    ("hinge", "uniform_to_p", 1.0, "straight_through"),
    ("hinge", "p_to_uniform", 0.4, "through_clip"),
    # The original Rob-GAN loss (Eq. 2.2-2.3).
    ("non_saturating", "uniform_to_p", 0.0, "straight_through")])
def test_replays_update_d_then_delta_like_numpy(loss, kl_direction, kl_weight, delta_gradient):
  lr, g_lr, cw, alpha = 0.3, 0.2, 0.8, 0.6
  data = arrays()
  kw = dict(lr=lr, g_lr=g_lr, loss=loss, kl_direction=kl_direction, kl_weight=kl_weight, class_weight=cw,
            g_class_weight=alpha)
  if delta_gradient != "straight_through":  # else the default, as the configs use it
    kw["delta_gradient"] = delta_gradient
  # Replay by replay, eagerly: snapshot D and delta each time the replay reports.
  gan = make_fast(**kw)
  want = np_train_step(gan, data, lr, eps=EPS, tau=TAU, loss=loss, cw=cw, klw=kl_weight,
                       kl_direction=kl_direction, delta_gradient=delta_gradient)
  delta0 = delta_of(gan)
  assert np.abs(delta0).max() <= EPS and np.abs(delta0).max() > EPS / 2  # U(-eps, eps)
  seen, track = [], gan.track

  def recording_track(**values):
    if "delta_abs" in values:
      seen.append((d_params(gan), delta_of(gan)))
    track(**values)

  gan.track = recording_track
  gan.discriminator_round(real=tf.constant(data["images"][:, 0]),
                           labels=tf.constant(data["labels"][:, 0]),
                           z=tf.constant(data["z_d"][:, 0]),
                           fake_labels=tf.constant(data["y_d"][:, 0]), index=0)
  assert len(seen) == 2
  for (got_params, got_delta), (want_params, want_delta) in zip(seen, want):
    for got, expected in zip(got_params, want_params):
      np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_delta, want_delta, atol=1e-6)
  # Both replays moved delta, each by at most tau per coordinate. Where x + delta is clipped
  # (first coordinate at +-0.98), the clip's own gradient froze delta; straight through, it moved.
  assert not np.allclose(want[0][1], delta0) and not np.allclose(want[1][1], want[0][1])
  assert np.abs(want[0][1] - delta0).max() <= TAU + 1e-6
  clipped = np.abs(data["images"][:, 0, 0] + delta0[:, 0]) > 1.0
  assert clipped.any()
  moved = want[0][1][:, 0] != delta0[:, 0]
  if delta_gradient == "through_clip":
    assert not np.any(clipped & moved)
  else:
    assert np.all(moved[clipped] | (np.abs(delta0[clipped, 0]) == EPS))

  # The same step through fit (compiled): D and delta after the 2 replays, then G on the new D.
  fitted = make_fast(**kw)
  logs = engine.fit(fitted, dataset(data), 1)
  final_params, final_delta = want[-1]
  for got, expected in zip(d_params(fitted), final_params):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(delta_of(fitted), final_delta, atol=1e-6)
  want_g, want_g_loss = np_g_update(final_params, g_params(gan), data["z_g"].astype(np.float64),
                                    data["y_g"], g_lr, alpha, loss)
  for got, expected in zip(g_params(fitted), want_g):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(logs["g_loss"], want_g_loss.mean(), rtol=1e-4)
  assert fitted.d_optimizer.iterations.numpy() == 2 and fitted.g_optimizer.iterations.numpy() == 1


def test_delta_persists_across_train_steps_and_epsilon_zero_keeps_it_at_zero():
  lr = 0.2
  data = arrays(batch=2 * B, seed=4)
  gan = make_fast(lr=lr)
  reference = make_fast(lr=lr)
  engine.fit(gan, dataset(data), 2)
  # Step 2 starts from the delta step 1 left (not a fresh draw): chain the reference by hand.
  for step in range(2):
    rows = {k: v[step * B:(step + 1) * B] for k, v in data.items()}
    want = np_train_step(reference, rows, lr, eps=EPS, tau=TAU)
    engine.fit(reference, dataset(rows), 1)
    np.testing.assert_allclose(delta_of(reference), want[-1][1], atol=1e-6)
  np.testing.assert_allclose(delta_of(gan), delta_of(reference), atol=1e-6)
  for got, expected in zip(d_params(gan), d_params(reference)):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

  off = make_fast(epsilon=0.0)
  assert np.all(delta_of(off) == 0)
  engine.fit(off, dataset(data), 2)
  assert np.all(delta_of(off) == 0)


# ------------------------------------------------------------------ the losses
@pytest.mark.parametrize("direction", ["uniform_to_p", "p_to_uniform"])
def test_kl_term_in_the_d_loss_is_the_closed_form(direction):
  cw, klw = 0.3, 0.7
  gan = make_fast(class_weight=cw, kl_weight=klw, kl_direction=direction)
  data = arrays(seed=2)
  x, y = data["images"][:, 0], data["labels"][:, 0]
  fake, y_f = data["images"][:, 0][::-1] * 0.5, data["y_d"][:, 0]
  w, c, v, b = d_params(gan)
  per_example, logs = gan.discriminator_loss(tf.constant(x), tf.constant(y), tf.constant(fake),
                                             tf.constant(y_f), tf.constant([0, 0]))
  lf = fake @ v + b
  log_p = np.log(softmax(lf))
  closed = (-np.log(CLASSES) - log_p.mean(-1) if direction == "uniform_to_p"
            else np.sum(np.exp(log_p) * log_p, -1) + np.log(CLASSES))
  np.testing.assert_allclose(closed, np_kl(lf, direction), rtol=1e-9)  # closed form == definition
  t_r, t_f = x @ w[:, 0] + c[0], fake @ w[:, 0] + c[0]
  ce_real = -np.log(softmax(x @ v + b)[np.arange(B), y])
  want = np.maximum(0, 1 - t_r) + np.maximum(0, 1 + t_f) + cw * ce_real + klw * closed
  np.testing.assert_allclose(per_example.numpy(), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logs["d_loss"].numpy(), want.mean(), rtol=1e-5)
  # The library function directly: the closed form, >= 0, and 0 at the uniform posterior.
  np.testing.assert_allclose(losses.kl_to_uniform(tf.constant(lf, tf.float32), direction).numpy(),
                             closed, rtol=1e-5, atol=1e-6)
  assert np.all(closed > 0)
  np.testing.assert_allclose(
      losses.kl_to_uniform(tf.fill([3, CLASSES], 2.5), direction).numpy(), 0.0, atol=1e-6)
  # kl_weight = 0 drops the term (the "w/o KL-term" ablation).
  no_kl = make_fast(class_weight=cw, kl_weight=0.0, kl_direction=direction)
  per_example, _ = no_kl.discriminator_loss(tf.constant(x), tf.constant(y), tf.constant(fake),
                                            tf.constant(y_f), tf.constant([0, 0]))
  np.testing.assert_allclose(per_example.numpy(), want - klw * closed, rtol=1e-5, atol=1e-6)


def test_generator_loss_and_one_g_update():
  lr, alpha = 0.25, 0.2
  data = arrays(seed=5)
  gan = make_fast(lr=0.1, g_lr=lr, g_class_weight=alpha)  # only G is updated here
  z, y_g = data["z_g"].astype(np.float64), data["y_g"]
  want_g, want_loss = np_g_update(d_params(gan), g_params(gan), z, y_g, lr, alpha)
  gan.generator_update(tf.constant(data["z_g"]), tf.constant(y_g))
  for got, expected in zip(g_params(gan), want_g):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  g_loss = gan.metrics[[m.name for m in gan.metrics].index("g_loss")].result().numpy()
  np.testing.assert_allclose(g_loss, want_loss.mean(), rtol=1e-5)
  # Per example, on arbitrary D outputs: -t - alpha * log p(y | x).
  rng = np.random.default_rng(0)
  t = rng.normal(size=B).astype("f4")
  logits = rng.normal(size=(B, CLASSES)).astype("f4")
  got = gan.generator_loss({"logits": tf.constant(t), "class_logits": tf.constant(logits)},
                           tf.constant(y_g)).numpy()
  np.testing.assert_allclose(got, -t - alpha * np.log(softmax(logits)[np.arange(B), y_g]),
                             rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the learning-rate anneal
@pytest.mark.parametrize("per_train_step", [True, False])
def test_learning_rates_follow_eq_4_1_at_every_train_step(per_train_step):
  # D and G start from different rates (D/ and G/ scopes), so that a D/G mix-up shows.
  eta0, g_eta0, base, horizon, n_dis, replays, steps = 0.01, 0.004, 0.5, 3, 2, 2, 5
  for key, value in (("name", "sgd"), ("decay_steps", horizon), ("decay_rate", base),
                     ("D/make_optimizer.learning_rate", eta0),
                     ("G/make_optimizer.learning_rate", g_eta0)):
    gin.bind_parameter(key if "/" in key else f"make_optimizer.{key}", value)
  d_opt, g_opt = loop._build_optimizers()  # pylint: disable=protected-access  (the gin path)
  gan = FastRobGAN(LinearACG(), LinearACD(), conditional=True, batch_size=B, n_dis=n_dis,
                   replays=replays, loss="hinge", anneal_per_train_step=per_train_step)
  gan.compile(d_opt, g_opt, jit_compile=False, run_eagerly=True)
  schedule = gan.d_optimizer._learning_rate  # pylint: disable=protected-access
  assert isinstance(schedule, TrainStepSchedule) == per_train_step
  d_seen, g_seen = [], []
  apply_d, update_g = gan.apply_discriminator_gradients, gan.generator_update

  def record_d(grads):
    d_seen.append(optimizers.current_learning_rate(gan.d_optimizer))
    return apply_d(grads)

  def record_g(z, labels):
    g_seen.append(optimizers.current_learning_rate(gan.g_optimizer))
    return update_g(z, labels)

  gan.apply_discriminator_gradients, gan.generator_update = record_d, record_g
  engine.fit(gan, dataset(arrays(n_dis=n_dis, batch=steps * B)), steps)
  i = np.arange(steps)
  updates = n_dis * replays
  np.testing.assert_allclose(g_seen, g_eta0 * base ** (i / horizon), rtol=1e-6)
  if per_train_step:  # every D update of train step i uses eta(i)
    want_d = np.repeat(eta0 * base ** (i / horizon), updates)
  else:  # the plain schedule counts D's own updates
    want_d = eta0 * base ** (np.arange(steps * updates) / horizon)
  np.testing.assert_allclose(d_seen, want_d, rtol=1e-6)
  assert gan.d_optimizer.iterations.numpy() == steps * updates
  assert gan.g_optimizer.iterations.numpy() == steps
  # After the run both report eta(i) for the next train step i = steps (continuous, not stairs).
  np.testing.assert_allclose(optimizers.current_learning_rate(gan.g_optimizer),
                             g_eta0 * base ** (steps / horizon), rtol=1e-6)
  if per_train_step:
    np.testing.assert_allclose(optimizers.current_learning_rate(gan.d_optimizer),
                               eta0 * base ** (steps / horizon), rtol=1e-6)
    # The wrapper itself: iterations u -> eta(floor(u / updates)), and it serialises.
    np.testing.assert_allclose([float(schedule(u)) for u in range(9)],
                               eta0 * base ** (np.arange(9) // updates / horizon), rtol=1e-6)
    clone = TrainStepSchedule.from_config(schedule.get_config())
    assert float(clone(7)) == pytest.approx(float(schedule(7)))


# ------------------------------------------------------------------ per-replica delta
def test_each_replica_keeps_its_own_delta_and_d_matches_one_device():
  lr, steps = 0.2, 2
  data = arrays(batch=steps * B, seed=7)
  one = make_fast(lr=lr)
  two = make_fast(strategy=mirrored(), lr=lr)
  components = two.delta_state().components()
  assert len(components) == 2 and components[0].shape[0] == B // 2
  assert isinstance(two.delta, tf.distribute.DistributedValues)
  np.testing.assert_array_equal(delta_of(two), delta_of(one))  # same global initial delta
  # NumPy reference over the whole batch (D sees the all-reduced gradient of the global batch).
  reference = make_fast(lr=lr)
  wants = []
  for step in range(steps):
    rows = {k: v[step * B:(step + 1) * B] for k, v in data.items()}
    wants.append(np_train_step(reference, rows, lr, eps=EPS, tau=TAU)[-1])
    engine.fit(reference, dataset(rows), 1)
  for gan in (one, two):
    engine.fit(gan, dataset(data), steps)
  want_params, want_delta = wants[-1]
  halves = [c.numpy().astype(np.float64) for c in two.delta_state().components()]
  assert not np.allclose(halves[0], halves[1])
  np.testing.assert_allclose(halves[0], want_delta[:B // 2], atol=1e-6)  # replica 0: rows 0..3
  np.testing.assert_allclose(halves[1], want_delta[B // 2:], atol=1e-6)  # replica 1: rows 4..7
  np.testing.assert_allclose(np.concatenate(halves), delta_of(one), atol=1e-6)
  for got_two, got_one, expected in zip(d_params(two), d_params(one), want_params):
    np.testing.assert_allclose(got_two, got_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_two, expected, rtol=1e-4, atol=1e-5)
  for got_one, expected in zip(d_params(one), d_params(reference)):
    np.testing.assert_allclose(got_one, expected, rtol=1e-5, atol=1e-6)
  for got_two, got_one in zip(g_params(two), g_params(one)):
    np.testing.assert_allclose(got_two, got_one, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ checkpoints
def _save(gan, path, strategy=None):
  with (strategy or tf.distribute.get_strategy()).scope():
    manager = checkpoints.make_manager(gan, path)
  return manager.save()


def _restore(gan, path, strategy=None):
  with (strategy or tf.distribute.get_strategy()).scope():
    manager = checkpoints.make_manager(gan, path)
  return checkpoints.restore(manager)


@pytest.mark.parametrize("saved_on, restored_on", [
    pytest.param(1, 1, marks=pytest.mark.slow), (2, 1),
    pytest.param(1, 2, marks=pytest.mark.slow)])  # 10-16 s each; the 2 -> 1 case stays quick
def test_delta_survives_checkpoint_and_resume(tmp_path, saved_on, restored_on):
  lr = 0.2
  data = arrays(batch=2 * B, seed=9)
  first = {k: v[:B] for k, v in data.items()}
  second = {k: v[B:] for k, v in data.items()}
  strategies = {1: None, 2: mirrored()}
  # An uninterrupted 2-step run on one device is the reference.
  straight = make_fast(lr=lr)
  engine.fit(straight, dataset(data), 2)

  before = make_fast(strategy=strategies[saved_on], lr=lr)
  engine.fit(before, dataset(first), 1)
  trained_delta = delta_of(before)
  path = str(tmp_path / "run")
  assert _save(before, path, strategies[saved_on]) is not None
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(path + "/checkpoints"))
  saved = [n for n in reader.get_variable_to_shape_map() if n.startswith("state/")]
  assert len(saved) == 1 and reader.get_variable_to_shape_map()[saved[0]] == [B, DIM]
  np.testing.assert_allclose(reader.get_tensor(saved[0]), trained_delta, atol=0)

  after = make_fast(strategy=strategies[restored_on], lr=lr)
  assert not np.allclose(delta_of(after), trained_delta)  # a fresh run has the initial delta
  assert _restore(after, path, strategies[restored_on]) is not None
  np.testing.assert_array_equal(delta_of(after), trained_delta)
  if restored_on == 2:
    halves = [c.numpy() for c in after.delta_state().components()]
    np.testing.assert_array_equal(halves[1], trained_delta[B // 2:])
  for got, expected in zip(d_params(after), d_params(before)):
    np.testing.assert_array_equal(got, expected)
  assert after.g_optimizer.iterations.numpy() == 1 and after.d_optimizer.iterations.numpy() == 2
  # Resuming continues exactly like the uninterrupted run.
  engine.fit(after, dataset(second), 1)
  np.testing.assert_allclose(delta_of(after), delta_of(straight), atol=1e-6)
  for got, expected in zip(d_params(after) + g_params(after),
                           d_params(straight) + g_params(straight)):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_restoring_into_a_different_global_batch_is_refused(tmp_path):
  path = str(tmp_path / "run")
  _save(make_fast(), path)
  with pytest.raises(errors.ConfigError, match="batch_size|rows"):
    _restore(make_fast(batch_size=2 * B), path)


# ------------------------------------------------------------------ real models
def test_conditional_sampling_with_the_real_builders():
  classes, latent = 10, 16
  generator = models.build_generator(arch="dcgan", output_shape=(32, 32, 1), latent_dim=latent,
                                     num_classes=classes, width=8)
  discriminator = models.build_discriminator(arch="dcgan", input_shape=(32, 32, 1), head="ac",
                                             num_classes=classes, width=8)
  gan = FastRobGAN(generator, discriminator, conditional=True, batch_size=4, loss="hinge")
  gan.compile(keras.optimizers.Adam(2e-4), keras.optimizers.Adam(2e-4), jit_compile=False)
  assert gan.delta_state().global_value().shape == (4, 32, 32, 1)
  # The class tables of conditional BN start equal (gamma 1, beta 0): give them distinct values,
  # as training does, then train one step with the real networks.
  rng = np.random.default_rng(0)
  for w in generator.weights:
    if w.shape.rank == 2 and w.shape[0] == classes and ("gamma" in w.path or "beta" in w.path):
      w.assign(w.numpy() + rng.normal(scale=0.3, size=w.shape).astype("f4"))
  batch = {"images": rng.uniform(-1, 1, (4, 1, 32, 32, 1)).astype("f4"),
           "labels": rng.integers(0, classes, (4, 1)).astype("i4"),
           "z_d": rng.normal(size=(4, 1, latent)).astype("f4"),
           "z_g": rng.normal(size=(4, latent)).astype("f4"),
           "y_d": rng.integers(0, classes, (4, 1)).astype("i4"),
           "y_g": rng.integers(0, classes, (4,)).astype("i4")}
  logs = engine.fit(gan, dataset(batch, 4), 1)
  assert all(np.isfinite(v) for v in logs.values())
  images, labels = sampling.generate(gan, 12, seed=3)
  assert images.shape == (12, 32, 32, 1) and list(labels) == [i % classes for i in range(12)]
  assert np.abs(images).max() <= 1.0
  one_class, labels = sampling.generate(gan, 3, seed=3, label=7)
  assert one_class.shape == (3, 32, 32, 1) and list(labels) == [7, 7, 7]
  # Same z, every class: ten different images.
  z = tf.repeat(tf.random.stateless_normal([1, latent], seed=[1, 2]), classes, axis=0)
  out = gan.generate(z, tf.range(classes), training=False).numpy()
  assert out.shape == (classes, 32, 32, 1)
  flat = out.reshape(classes, -1)
  gaps = np.abs(flat[:, None] - flat[None]).max(-1)
  assert np.all(gaps[~np.eye(classes, dtype=bool)] > 1e-4)


# ------------------------------------------------------------------ errors
def test_bad_configurations_raise_clear_errors():
  with pytest.raises(errors.ConfigError, match="delta_init 'gaussian'.*uniform, clamped_normal"):
    make_fast(delta_init="gaussian")
  with pytest.raises(errors.ConfigError, match="kl_direction 'forward'.*uniform_to_p"):
    make_fast(kl_direction="forward")
  with pytest.raises(errors.ConfigError, match="kl_to_uniform direction"):
    losses.kl_to_uniform(tf.zeros([2, CLASSES]), direction="forward")
  with pytest.raises(errors.ConfigError, match="replays"):
    make_fast(replays=0)
  with pytest.raises(errors.ConfigError, match="epsilon must be >= 0"):
    make_fast(epsilon=-0.1)
  with pytest.raises(errors.ConfigError, match="global batch size"):
    make_fast(batch_size=0)
  with pytest.raises(errors.ConfigError, match="class-conditional"):
    FastRobGAN(LinearACG(), LinearACD(), conditional=False, batch_size=B)
  with pytest.raises(errors.ConfigError, match="head = 'ac'"):
    make_fast(head="plain")
  with pytest.raises(errors.ConfigError, match="no labels"):
    loop.build_gan((32, 32, 1), 0, method="fast_robgan")
  with pytest.raises(errors.ConfigError, match="not divisible"):
    make_fast(strategy=mirrored(), batch_size=B + 1)


def test_batch_size_mismatch_and_the_train_batch_size_default():
  gan = make_fast(batch_size=2 * B)
  with pytest.raises(errors.ConfigError,
                     match="made for 16 examples .* has 8.*FastRobGAN.batch_size"):
    engine.fit(gan, dataset(arrays()), 1)
  gin.bind_parameter("train.batch_size", 2 * B)  # build_gan passes the run's batch size in
  assert loop.build_gan((32, 32, 1), CLASSES, method="fast_robgan").batch_size == 2 * B
  assert loop.build_gan((32, 32, 1), CLASSES, method="fast_robgan", batch_size=B).batch_size == B
  with pytest.raises(errors.ConfigError, match="global batch size"):
    FastRobGAN(LinearACG(), LinearACD(), conditional=True)  # from Python: pass batch_size
  gin.bind_parameter("FastRobGAN.batch_size", None)  # as older operative configs hold it
  assert loop.build_gan((32, 32, 1), CLASSES, method="fast_robgan").batch_size == 2 * B
  gin.bind_parameter("FastRobGAN.batch_size", 3 * B)  # the method's own binding wins
  gan = loop.build_gan((32, 32, 1), CLASSES, method="fast_robgan", batch_size=B)
  assert gan.batch_size == 3 * B
  data = arrays()
  del data["labels"]
  with pytest.raises(errors.ConfigError, match="no labels"):
    engine.fit(make_fast(), dataset(data), 1)
