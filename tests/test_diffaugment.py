"""DiffAugment (`tfadvgan.augment`): each op against its closed form, the random draws in the
official ranges, gradients through every op, the global-batch draw split across replicas, and the
wiring in the GAN step (D sees augmented reals and fakes, G's gradient flows through the
augmentation), with 1 and 2 replicas giving the same updates (LeCam on as well)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import augment
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan import rng
from tfadvgan.gans.base import GAN
from tfadvgan.training import engine

H, W, C, LATENT = 8, 8, 1, 3


def images(seed, shape=(4, H, W, 3)):
  return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype("f4")


def np_translate(x, sh, sw):
  out = np.zeros_like(x)
  for b in range(x.shape[0]):
    for i in range(x.shape[1]):
      for j in range(x.shape[2]):
        if 0 <= i + sh[b] < x.shape[1] and 0 <= j + sw[b] < x.shape[2]:
          out[b, i, j] = x[b, i + sh[b], j + sw[b]]
  return out


def np_cutout(x, top, left, size_h, size_w):
  out = x.copy()
  for b in range(x.shape[0]):
    out[b, max(top[b], 0):max(top[b] + size_h, 0), max(left[b], 0):max(left[b] + size_w, 0)] = 0
  return out


def test_parse_policy():
  assert augment.parse_policy(None) == () and augment.parse_policy("") == ()
  assert augment.parse_policy("translation, color") == ("translation", "color")
  with pytest.raises(errors.ConfigError, match="Unknown GAN.diffaugment entry 'colour'"):
    augment.parse_policy("colour,cutout")
  with pytest.raises(errors.ConfigError, match="twice"):
    augment.parse_policy("cutout,cutout")


def test_translate_moves_pixels_exactly():
  x = images(0)
  sh, sw = np.array([2, -1, 0, -3]), np.array([-1, 3, 0, 2])  # rows and columns differ
  out = augment.translate(tf.constant(x), sh, sw).numpy()
  np.testing.assert_array_equal(out, np_translate(x, sh, sw))
  assert out[0, 0, 1, 0] == x[0, 2, 0, 0] and out[0, 0, 0, 0] == 0  # x[i + 2, j - 1]


def test_cutout_zeroes_exactly_the_box():
  x = images(1)
  top, left = np.array([-3, 5, 0, 2]), np.array([1, 6, -4, 0])  # boxes cut at every border
  out = augment.cutout(tf.constant(x), top, left, 4, 3).numpy()
  np.testing.assert_array_equal(out, np_cutout(x, top, left, 4, 3))
  assert (out[0, :1, 1:4] == 0).all() and (out[0, 1:] == x[0, 1:]).all()


def test_colour_ops_with_known_factors():
  x = images(2)
  u = np.array([0.1, 0.9, 0.5, 0.3], "f4")
  k = u[:, None, None, None]
  np.testing.assert_allclose(augment.brightness(tf.constant(x), u), x + k - 0.5, atol=1e-6)
  m_c = x.mean(3, keepdims=True)
  np.testing.assert_allclose(augment.saturation(tf.constant(x), u), (x - m_c) * 2 * k + m_c,
                             atol=1e-6)
  m = x.mean((1, 2, 3), keepdims=True)
  np.testing.assert_allclose(augment.contrast(tf.constant(x), u), (x - m) * (k + 0.5) + m,
                             atol=1e-6)
  grey = images(3, (4, H, W, 1))  # one channel: saturation is the identity, as in the official code
  np.testing.assert_allclose(augment.saturation(tf.constant(grey), u), grey, atol=1e-6)


def _solve_translation(x, out):
  """The (row, column) shift s with out = translate(x, s), per example (asserts there is one)."""
  found = []
  for b in range(x.shape[0]):
    hits = [(i, j) for i in range(-H // 2, H // 2 + 1) for j in range(-W // 2, W // 2 + 1)
            if np.array_equal(np_translate(x[b:b + 1], [i], [j]), out[b:b + 1])]
    assert len(hits) == 1, (b, hits)
    found.append(hits[0])
  return found


def test_random_translation_and_cutout_use_the_official_ranges():
  x = images(4, (96, H, W, 1)) + 2.0  # no pixel is 0, so the fill and the box are visible
  seed = tf.constant([5, 9], tf.int32)
  out = augment.diff_augment(tf.constant(x), "translation", seed).numpy()
  shifts = _solve_translation(x, out)
  assert {s for s in shifts} == {(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)}  # 8 // 8 = 1
  cut = augment.diff_augment(tf.constant(x), "cutout", seed).numpy()
  tops, lefts = set(), set()
  for b in range(x.shape[0]):
    rows, cols = np.nonzero(cut[b, :, :, 0] == 0)
    # The box's first row and column, also when it starts above or left of the image.
    top = rows.min() if rows.min() > 0 else rows.max() - H // 2 + 1
    left = cols.min() if cols.min() > 0 else cols.max() - W // 2 + 1
    np.testing.assert_array_equal(cut[b:b + 1], np_cutout(x[b:b + 1], [top], [left], H // 2,
                                                          W // 2))
    tops.add(top)
    lefts.add(left)
  # Centres uniform in [0, 8] (even box of 4): box starts -2..6, all of them seen.
  assert tops == set(range(-2, 7)) and lefts == set(range(-2, 7)), (tops, lefts)


def test_gradients_flow_through_every_op():
  x = tf.constant(images(5))
  w = tf.constant(images(6))
  u = np.array([0.2, 0.7, 0.4, 0.95], "f4")
  k = u[:, None, None, None]
  sh, sw = np.array([1, -2, 0, 3]), np.array([0, 1, -1, -2])
  ops = {
      "brightness": (lambda x: augment.brightness(x, u), w.numpy()),
      "translate": (lambda x: augment.translate(x, sh, sw), np_translate(w.numpy(), -sh, -sw)),
      "cutout": (lambda x: augment.cutout(x, np.array([1, -1, 4, 0]), np.array([2, 0, 5, -2]),
                                          3, 4),
                 np_cutout(w.numpy(), [1, -1, 4, 0], [2, 0, 5, -2], 3, 4)),
      # d/dx of sum w * ((x - m) (k + 0.5) + m): (k + 0.5) w + (1 - k - 0.5) * mean(w).
      "contrast": (lambda x: augment.contrast(x, u),
                   (k + 0.5) * w.numpy() + (0.5 - k) * w.numpy().mean((1, 2, 3), keepdims=True)),
  }
  for name, (fn, expected) in ops.items():
    with tf.GradientTape() as tape:
      tape.watch(x)
      value = tf.reduce_sum(w * fn(x))
    np.testing.assert_allclose(tape.gradient(value, x), expected, atol=1e-5, err_msg=name)


def test_replicas_take_their_rows_of_one_global_draw_with_and_without_xla():
  x = tf.constant(images(7, (8, H, W, 3)))
  seed = tf.constant([3, 4], tf.int32)
  policy = "color,translation,cutout"
  whole = augment.diff_augment(x, policy, seed).numpy()
  halves = [augment.diff_augment(x[4 * r:4 * r + 4], policy, seed, r, 2).numpy() for r in (0, 1)]
  np.testing.assert_array_equal(np.concatenate(halves), whole)
  jitted = tf.function(lambda x, r: augment.diff_augment(x, policy, seed, r, 2), jit_compile=True)
  np.testing.assert_allclose(jitted(x[4:], tf.constant(1)), halves[1], atol=1e-6)
  other = augment.diff_augment(x, policy, tf.constant([3, 5], tf.int32)).numpy()
  assert np.abs(other - whole).max() > 0.1  # the seed matters


# ------------------------------------------------------------------ in the GAN step
class ImageG(keras.Model):
  """G(z) = reshape(z K + b) to [H, W, 1] images (linear)."""

  def __init__(self):
    super().__init__()
    self.latent_dim, self.num_classes, self.output_shape_ = LATENT, 0, (H, W, C)
    self.dense = keras.layers.Dense(H * W * C)
    self(tf.zeros([1, LATENT]))

  def call(self, z, labels=None, training=None):
    return tf.reshape(self.dense(z), [-1, H, W, C])


class ImageD(keras.Model):
  """D(x) = <x, w> + c (linear)."""

  def __init__(self):
    super().__init__()
    self.num_classes, self.head, self.input_shape_ = 0, "plain", (H, W, C)
    self.dense = keras.layers.Dense(1)
    self(tf.zeros([1, H, W, C]))

  def call(self, x, labels=None, training=None):
    return {"logits": self.dense(tf.reshape(x, [-1, H * W * C]))[:, 0]}


def make(strategy=None, jit=False, lr=0.1, g_lr=0.07, **kwargs):
  strategy = strategy or tf.distribute.get_strategy()
  keras.utils.set_random_seed(5)
  with strategy.scope():
    gan = GAN(ImageG(), ImageD(), **kwargs)
    gan.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(g_lr), jit_compile=jit)
  return gan


def image_batches(n_dis, batch=8, steps=1, seed=0):
  r = np.random.default_rng(seed)
  n = batch * steps
  arrays = {"images": r.uniform(-1, 1, size=(n, n_dis, H, W, C)).astype("f4"),
            "z_d": r.normal(size=(n, n_dis, LATENT)).astype("f4"),
            "z_g": r.normal(size=(n, LATENT)).astype("f4")}
  return arrays, tf.data.Dataset.from_tensor_slices(arrays).batch(batch, drop_remainder=True)


def sigmoid(t):
  return 1.0 / (1.0 + np.exp(-t))


def cutout_mask(seed, salt, batch):
  seed = tf.random.experimental.stateless_fold_in(seed, salt)
  return augment.diff_augment(tf.ones([batch, H, W, C]), "cutout", seed).numpy().reshape(batch, -1)


@pytest.mark.parametrize("jit", [False, True])
def test_d_sees_augmented_batches_and_g_gradient_flows_through_the_augmentation(jit):
  """Cutout only, linear G and D, non-saturating loss: D's update uses the masked reals and fakes,
  G's the masked fakes (its gradient is w * mask per pixel). The masks are read from the seeds the
  step uses; with the augmentation skipped on any side the weights differ."""
  arrays, ds = image_batches(1)
  lr, g_lr = 0.5, 0.3
  gan = make(jit=jit, lr=lr, g_lr=g_lr, diffaugment="cutout")
  k, b = [v.numpy() for v in gan.generator.weights]
  w, c = [v.numpy() for v in gan.discriminator.weights]
  mask_real = cutout_mask(gan.step_seed(0, per_replica=False), rng.DIFFAUGMENT_REAL, 8)
  mask_fake = cutout_mask(gan.step_seed(0, per_replica=False), rng.DIFFAUGMENT_FAKE, 8)
  assert 0 < mask_real.mean() < 1 and np.abs(mask_real - mask_fake).max() == 1  # independent
  real = arrays["images"][:, 0].reshape(8, -1) * mask_real
  fake = (arrays["z_d"][:, 0] @ k + b) * mask_fake
  t_r, t_f = real @ w + c, fake @ w + c
  w = w - lr * (-sigmoid(-t_r) * real + sigmoid(t_f) * fake).mean(0)[:, None]
  c = c - lr * (-sigmoid(-t_r) + sigmoid(t_f)).mean(0)
  engine.fit(gan, ds, 1)
  np.testing.assert_allclose(gan.discriminator.weights[0].numpy(), w, rtol=1e-5, atol=1e-6)
  mask_g = cutout_mask(gan.step_seed(rng.GENERATOR_STEP, per_replica=False),
                       rng.DIFFAUGMENT_FAKE, 8)
  z = arrays["z_g"]
  t_g = ((z @ k + b) * mask_g) @ w + c
  g_x = -sigmoid(-t_g) * w[:, 0][None] * mask_g / len(z)  # d loss / d G(z), through the mask
  np.testing.assert_allclose(gan.generator.weights[0].numpy(), k - g_lr * z.T @ g_x,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gan.generator.weights[1].numpy(), b - g_lr * g_x.sum(0),
                             rtol=1e-5, atol=1e-6)


def test_non_image_samples_are_refused():
  class PointG(ImageG):
    def __init__(self):
      super().__init__()
      self.output_shape_ = (2,)
  with pytest.raises(errors.ConfigError, match="GAN.diffaugment augments images"):
    GAN(PointG(), ImageD(), diffaugment="translation")


@pytest.mark.parametrize("jit", [pytest.param(False, marks=pytest.mark.slow), True])
def test_two_replicas_match_one_device_with_diffaugment_and_lecam(jit):
  """Two logical CPUs (per-replica XLA with jit) against one device on the same global batches:
  the same augmentation per example and the same global LeCam anchors give the same weights."""
  _, ds = image_batches(2, batch=8, steps=2, seed=1)
  knobs = dict(diffaugment="color,translation,cutout", lecam_weight=0.5, lecam_decay=0.7,
               loss="hinge", n_dis=2)
  one = make(**knobs)
  two = make(strategy=distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
             jit=jit, **knobs)
  for a, b in zip(one.weights, two.weights):
    b.assign(a.numpy())
  log1 = engine.fit(one, ds, 2)
  log2 = engine.fit(two, ds, 2)
  assert two.distribute_strategy.num_replicas_in_sync == 2 and two.replica_jit == jit
  if jit:
    compiled = set(two._compiled_fns)  # pylint: disable=protected-access
    assert {"diffaugment", "generator_gradients"} <= compiled
  for a, b in zip(one.discriminator.weights + one.generator.weights,
                  two.discriminator.weights + two.generator.weights):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
  anchors = [v.numpy() for v in two.lecam.anchors.values]
  np.testing.assert_allclose(anchors[0], one.lecam.anchors.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(anchors[0], anchors[1])
  assert one.lecam.updates.numpy() == 4
  for key in ("d_loss", "g_loss", "lecam", "lecam_anchor_real", "lecam_anchor_fake"):
    np.testing.assert_allclose(log2[key], log1[key], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ with every method
def build_method(method):
  """A DCGAN-32 (width 8) run of `method` on 1-channel images, DiffAugment and LeCam on."""
  from tfadvgan.cli import common  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as loop  # pylint: disable=g-import-not-at-top
  import helpers  # pylint: disable=g-import-not-at-top
  common.parse_gin([], helpers.METHOD_BINDINGS.get(method, []) + [
      "build_generator.width = 8", "build_discriminator.width = 8", "build_gan.latent_dim = 4",
      "build_gan.jit_compile = False", "GAN.diffaugment = 'color,translation,cutout'",
      "GAN.lecam_weight = 0.3"])
  return loop.build_gan((32, 32, 1), 4)


# AS-GAN's step holds the baseline's and a second update on the augmented reals; the others ran
# 6-12 s each here under load and go with `-m slow`.
@pytest.mark.parametrize("method", ["as_gan"] + [pytest.param(m, marks=pytest.mark.slow) for m in
                                                 ("gan", "dat", "robgan", "fast_robgan")])
def test_every_method_trains_with_diffaugment_and_lecam(method):
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  gan = build_method(method)
  r = np.random.default_rng(8)
  source = data_lib.from_arrays(r.uniform(-1, 1, size=(32, 32, 32, 1)).astype("f4"),
                                r.integers(0, 4, 32))
  ds = data_lib.make_train_dataset(source, 8, n_dis=gan.n_dis, latent_dim=4,
                                   conditional=gan.conditional, seed=2)
  before = [v.numpy() for v in gan.discriminator.trainable_variables]
  logs = engine.fit(gan, ds.take(2), 2)
  assert gan.diffaugment == ("color", "translation", "cutout") and gan.lecam is not None
  assert all(np.isfinite(v) for v in logs.values()), logs
  assert logs["lecam"] > 0 and int(gan.lecam.updates.numpy()) >= 2 * gan.n_dis
  assert any(np.abs(a - b.numpy()).max() > 0 for a, b in
             zip(before, gan.discriminator.trainable_variables))
