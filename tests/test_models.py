"""Tests for tfadvgan.models: shapes, DCGAN details, spectral norm, conditional BN, heads."""
import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import distribute
from tfadvgan import models
from tfadvgan.models import layers
from tfadvgan.models import resnet

B = 4
LATENT = 8
K = 3  # classes


def _labels(n=B):
  return tf.constant(np.arange(n) % K, dtype=tf.int32)


def _sublayers(model):
  return list(model._flatten_layers(include_self=False, recursive=True))


def _weighted_layers(model):
  """Every Conv/ConvTranspose/Dense inside ``model`` (also those inside SN wrappers)."""
  kinds = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)
  return [l for l in _sublayers(model) if isinstance(l, kinds)]


def _sn_wrappers(model):
  return [l for l in _sublayers(model) if isinstance(l, keras.layers.SpectralNormalization)]


def _top_singular_value(kernel):
  kernel = np.asarray(kernel)
  return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


# 64/128 px ResNets take 8-10 s each: they run with `-m slow` (test_training builds the 64 and
# 128 px configs).
IMAGE_CASES = [(arch, (r, r, c)) if arch == "dcgan" or r == 32
               else pytest.param(arch, (r, r, c), marks=pytest.mark.slow)
               for arch, rs in (("dcgan", (32, 64)), ("resnet", (32, 64, 128)))
               for r in rs for c in (1, 3)]


@pytest.mark.parametrize("arch,shape", IMAGE_CASES + [("mlp", (2,))])
def test_shapes_and_ranges_every_arch_resolution_channels_head(arch, shape):
  x_real = tf.random.uniform((B,) + shape, -1.0, 1.0, seed=1)
  width = 16 if arch == "mlp" else 4  # 4 ReLU units per layer can all die in a 4-layer MLP
  for num_classes in (0, K):
    g = models.build_generator(arch, shape, LATENT, num_classes, width=width)
    assert (g.latent_dim, g.num_classes, g.output_shape_) == (LATENT, num_classes, shape)
    y = _labels() if num_classes else None
    z = tf.random.normal([B, LATENT], seed=2) * 3.0
    for training in (False, True):
      x = g(z, labels=y, training=training).numpy()
      assert x.shape == (B,) + shape and np.all(np.isfinite(x))
      if arch != "mlp":  # tanh output in [-1, 1]; the MLP is linear (toy data is unbounded)
        assert np.abs(x).max() <= 1.0
      assert x.std() > 1e-7  # not a constant (DCGAN outputs are tiny at init with eval BN)
  for head in models.HEADS:
    num_classes = 0 if head == "plain" else K
    d = models.build_discriminator(arch, shape, head, num_classes, width=width)
    assert (d.head, d.num_classes) == (head, num_classes)
    out = d(x_real, labels=_labels(), training=True)
    expected = {"logits"} | ({"class_logits"} if head == "ac" else set())
    assert set(out) == expected
    assert out["logits"].shape == (B,) and out["logits"].dtype == tf.float32
    assert np.all(np.isfinite(out["logits"].numpy()))
    if head == "ac":
      assert out["class_logits"].shape == (B, K)


def test_mlp_output_activation_knob():
  gin.parse_config("MLPGenerator.output_activation = 'tanh'\nMLPGenerator.depth = 2")
  g = models.build_generator("mlp", (2,), LATENT, width=16)
  assert len(g.hidden_sizes) == 2
  x = g(tf.random.normal([64, LATENT]) * 100.0, training=False).numpy()
  assert np.abs(x).max() <= 1.0 and np.abs(x).max() > 0.5


def test_gin_configures_builders():
  gin.parse_config("""
      build_generator.arch = 'mlp'
      build_generator.latent_dim = 5
      build_discriminator.arch = 'mlp'
      build_discriminator.width = 7
  """)
  g = models.build_generator(output_shape=(2,))
  d = models.build_discriminator(input_shape=(2,))
  assert g.latent_dim == 5 and isinstance(g, models.GENERATORS["mlp"])
  assert d.hidden_sizes == (7,) * 4


def test_dcgan_structure_init_and_leaky_slope():
  g = models.build_generator("dcgan", (32, 32, 3), 100)
  d = models.build_discriminator("dcgan", (32, 32, 3))
  convs = [l for l in _weighted_layers(g) + _weighted_layers(d)
           if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
  assert len(convs) == 3 + 3
  for l in convs:
    assert not l.use_bias and l.bias is None
    assert l.kernel_size == (4, 4) and l.strides == (2, 2)
  # Channel plan for width 64.
  assert [l.filters for l in d.convs] == [64, 128, 256]
  assert [l.filters for l in g.deconvs] == [128, 64] and g.to_image.filters == 3
  assert g.project.units == 4 * 4 * 256 and not g.project.use_bias
  d64 = models.build_discriminator("dcgan", (64, 64, 3), width=8)
  assert [l.filters for l in d64.convs] == [8, 16, 32, 64]
  # BN: none on the first D block, BN on the others.
  assert d.norms[0] is None
  assert all(isinstance(n, keras.layers.BatchNormalization) for n in d.norms[1:])
  # N(0, 0.02) init, pooled over all kernels of G and D (~1.5M draws).
  w = np.concatenate([l.kernel.numpy().ravel() for l in _weighted_layers(g) + _weighted_layers(d)])
  assert abs(w.mean()) < 1e-3
  assert abs(w.std() - 0.02) < 5e-4
  # Per layer too (smallest: 4*4*3*64 = 3072 draws -> std error ~1.3%).
  for l in convs:
    assert abs(l.kernel.numpy().std() - 0.02) < 0.002, l.name
  # LeakyReLU slope 0.2, checked on values.
  np.testing.assert_allclose(d.activation(np.array([-1.0, -0.5, 2.0], np.float32)),
                             [-0.2, -0.1, 2.0], rtol=1e-6)


def test_dcgan_discriminator_forward_matches_manual():
  """The D features are conv -> (BN) -> LeakyReLU(0.2) in eval mode, checked numerically."""
  d = models.build_discriminator("dcgan", (32, 32, 1), width=4)
  x = tf.random.normal([2, 32, 32, 1], seed=3)
  h = x
  for i, conv in enumerate(d.convs):
    h = tf.nn.conv2d(h, conv.kernel, strides=2, padding="SAME")
    if i > 0:
      bn = d.norms[i]
      h = (h - bn.moving_mean) / tf.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta
    h = tf.where(h > 0, h, 0.2 * h)
  h = tf.reshape(h, [2, -1])
  psi = d.head_layer.psi
  want = tf.reshape(h @ psi.kernel + psi.bias, [-1])
  np.testing.assert_allclose(d(x, training=False)["logits"], want, rtol=1e-4, atol=1e-5)


def test_resnet_channel_plans_and_structure():
  g = models.build_generator("resnet", (64, 64, 3), LATENT, width=2)
  assert g.base_channels == 32 and [b.conv1.filters for b in g.blocks] == [16, 8, 4, 2]
  assert all(b.up.interpolation == "bilinear" for b in g.blocks)
  # SNGAN / Rob-GAN / Fast-RobGAN upsample by nearest neighbour: each block then repeats pixels.
  g_nn = models.build_generator("resnet", (32, 32, 3), LATENT, width=2, upsampling="nearest")
  assert all(b.up.interpolation == "nearest" for b in g_nn.blocks)
  h = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
  up = g_nn.blocks[0].up(h).numpy()
  np.testing.assert_array_equal(up, h.repeat(2, axis=1).repeat(2, axis=2))
  with pytest.raises(errors.ConfigError, match="resnet generator only"):
    models.build_generator("dcgan", (32, 32, 3), LATENT, width=2, upsampling="nearest")
  with pytest.raises(errors.ConfigError, match="bicubic"):
    models.build_generator("resnet", (32, 32, 3), LATENT, width=2, upsampling="bicubic")
  d = models.build_discriminator("resnet", (64, 64, 3), width=2)
  assert [b.conv1.filters for b in d.blocks] == [2, 4, 8, 16, 32]
  assert [b.downsample for b in d.blocks] == [True] * 5  # SNGAN snresnet_64, fastgan catdog64
  assert d.blocks[0].optimized and d.blocks[0].norm1 is None and d.blocks[0].norm2 is None
  assert all(b.norm1 is not None for b in d.blocks[1:])
  g128 = models.build_generator("resnet", (128, 128, 3), LATENT, width=2)
  assert [b.conv1.filters for b in g128.blocks] == [32, 16, 8, 4, 2]
  # The releases' dogs-and-cats 128 px nets (Rob-GAN resnet_small, fastgan catdog128): 8c cap.
  small_g = models.build_generator("resnet", (128, 128, 3), LATENT, width=2, plan="small")
  assert small_g.base_channels == 16
  assert [b.conv1.filters for b in small_g.blocks] == [16, 8, 8, 4, 2]
  small_d = models.build_discriminator("resnet", (128, 128, 3), width=2, plan="small")
  assert [b.conv1.filters for b in small_d.blocks] == [2, 4, 8, 8, 16, 16]
  assert [b.downsample for b in small_d.blocks] == [True] * 5 + [False]
  with pytest.raises(errors.ConfigError, match="128 px only"):
    models.build_discriminator("resnet", (64, 64, 3), width=2, plan="small")
  with pytest.raises(errors.ConfigError, match="resnet nets only"):
    models.build_generator("dcgan", (32, 32, 3), LATENT, width=2, plan="small")
  d32 = models.build_discriminator("resnet", (32, 32, 3), width=2, spectral_norm=True)
  assert [b.downsample for b in d32.blocks] == [True, True, False, False]
  assert all(b.norm1 is None and b.norm2 is None for b in d32.blocks)  # no BN with SN
  assert d32.blocks[2].skip is None  # identity skip when shape is unchanged
  d_nobn = models.build_discriminator("resnet", (32, 32, 3), width=2, batch_norm=False)
  assert not any(isinstance(l, keras.layers.BatchNormalization) for l in _sublayers(d_nobn))
  assert resnet.DEFAULT_WIDTH == {32: 128, 64: 64, 128: 64}
  # Glorot-uniform init: the bound is sqrt(6 / (fan_in + fan_out)).
  k = g.blocks[0].conv1.kernel.numpy()
  bound = np.sqrt(6.0 / (3 * 3 * 32 + 3 * 3 * 16))
  assert k.max() <= bound and k.max() > 0.9 * bound


def test_resnet_discriminator_ends_with_relu_sum_pool():
  d = models.build_discriminator("resnet", (32, 32, 3), width=4, batch_norm=False)
  x = tf.random.normal([2, 32, 32, 3], seed=4)
  h = x
  for block in d.blocks:
    h = block(h, training=False)
  want = tf.reduce_sum(tf.nn.relu(h), axis=[1, 2])
  np.testing.assert_allclose(d.features(x, training=False), want, rtol=1e-5, atol=1e-5)


def test_spectral_norm_wraps_every_layer_and_bounds_singular_values():
  d = models.build_discriminator("dcgan", (32, 32, 3), "projection", K, width=8,
                                 spectral_norm=True)
  wrappers = _sn_wrappers(d)
  wrapped = {id(w.layer) for w in wrappers}
  assert wrapped == {id(l) for l in _weighted_layers(d)}  # every conv/dense incl. the embedding
  assert len(wrappers) == 3 + 2  # 3 convs, psi, projection embedding
  assert not any(isinstance(l, keras.layers.BatchNormalization) for l in _sublayers(d))
  for w in wrappers:  # bigger than the tolerance before any training call, so the test bites
    w.layer.kernel.assign(w.layer.kernel * 50.0)
  sigmas_before = [_top_singular_value(w.layer.kernel) for w in wrappers]
  assert min(sigmas_before) > 1.5
  x = tf.random.normal([B, 32, 32, 3], seed=5)
  d(x, labels=_labels(), training=False)  # inference mode does not normalise
  np.testing.assert_allclose([_top_singular_value(w.layer.kernel) for w in wrappers],
                             sigmas_before, rtol=1e-6)

  step = tf.function(lambda: d(x, labels=_labels(), training=True))
  for _ in range(100):
    step()
  names = [w.layer.name for w in wrappers]
  sigmas = [_top_singular_value(w.layer.kernel) for w in wrappers]
  assert any(n.startswith("conv") for n in names)
  for n, s in zip(names, sigmas):
    assert 0.99 < s <= 1.0 + 1e-3, (n, s)
  # The estimate u is the top right singular vector of the conv kernel matrix.
  conv = d.convs[1]
  _, _, vt = np.linalg.svd(conv.layer.kernel.numpy().reshape(-1, conv.layer.filters))
  assert abs(abs(np.dot(vt[0], conv.vector_u.numpy()[0])) - 1.0) < 1e-2


def test_spectral_norm_on_generator_and_resnet():
  g = models.build_generator("resnet", (32, 32, 3), LATENT, K, width=4, spectral_norm=True)
  assert {id(w.layer) for w in _sn_wrappers(g)} == {id(l) for l in _weighted_layers(g)}
  d = models.build_discriminator("resnet", (32, 32, 3), "ac", K, width=4, spectral_norm=True)
  assert {id(w.layer) for w in _sn_wrappers(d)} == {id(l) for l in _weighted_layers(d)}
  z = tf.random.normal([B, LATENT], seed=6)
  step = tf.function(lambda: d(g(z, _labels(), training=True), training=True))
  for _ in range(150):  # one power-iteration step per training call; ~100 needed at 1e-3
    step()
  for w in _sn_wrappers(g) + _sn_wrappers(d):
    s = _top_singular_value(w.layer.kernel)
    assert 0.999 < s <= 1.0 + 1e-3, (w.layer.name, s)


def _numpy_bn(x, gamma, beta, eps=layers.BN_EPSILON):
  axes = tuple(range(x.ndim - 1))
  mean, var = x.mean(axis=axes), x.var(axis=axes)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("arch, shape", [("dcgan", (32, 32, 1)), ("resnet", (32, 32, 3))])
def test_batch_norm_beside_spectral_norm_only_when_asked(arch, shape):
  """None (default): BN unless spectral norm; an explicit True keeps BN with it (AS-GAN's release
  SN-DCGAN), an explicit False drops it."""
  def bn_layers(**kwargs):
    d = models.build_discriminator(arch=arch, input_shape=shape, width=8, **kwargs)
    return sum(isinstance(l, keras.layers.BatchNormalization) for l in d._flatten_layers())  # pylint: disable=protected-access
  plain = bn_layers()
  assert plain >= 2
  assert bn_layers(spectral_norm=True) == 0
  assert bn_layers(spectral_norm=True, batch_norm=True) == plain
  assert bn_layers(batch_norm=False) == 0


def test_conditional_batch_norm_matches_numpy():
  cbn = layers.ConditionalBatchNorm(K)
  x = np.random.RandomState(0).normal(2.0, 3.0, size=(6, 4, 4, 5)).astype(np.float32)
  cbn(x, tf.zeros([6], tf.int32))
  np.testing.assert_array_equal(cbn.gamma.numpy(), np.ones((K, 5)))  # init 1
  np.testing.assert_array_equal(cbn.beta.numpy(), np.zeros((K, 5)))  # init 0
  gamma = np.random.RandomState(1).uniform(0.5, 2.0, (K, 5)).astype(np.float32)
  beta = np.random.RandomState(2).normal(size=(K, 5)).astype(np.float32)
  cbn.gamma.assign(gamma)
  cbn.beta.assign(beta)
  y1 = np.array([0, 1, 2, 0, 1, 2], np.int32)
  y2 = np.array([2, 2, 0, 1, 0, 1], np.int32)
  out1 = cbn(x, y1, training=True).numpy()
  out2 = cbn(x, y2, training=True).numpy()
  want1 = _numpy_bn(x, gamma[y1][:, None, None, :], beta[y1][:, None, None, :])
  want2 = _numpy_bn(x, gamma[y2][:, None, None, :], beta[y2][:, None, None, :])
  np.testing.assert_allclose(out1, want1, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out2, want2, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out1 - out2, want1 - want2, rtol=1e-4, atol=1e-4)
  assert np.abs(out1 - out2).max() > 0.1
  # Moving statistics: momentum 0.9 from (0, 1), two training calls on the same x.
  mean = x.mean(axis=(0, 1, 2))
  np.testing.assert_allclose(cbn.bn.moving_mean.numpy(), (1 - 0.9 ** 2) * mean, rtol=1e-4)
  # Inference uses the moving statistics.
  mm, mv = cbn.bn.moving_mean.numpy(), cbn.bn.moving_variance.numpy()
  want = ((x - mm) / np.sqrt(mv + layers.BN_EPSILON) * gamma[y1][:, None, None, :]
          + beta[y1][:, None, None, :])
  np.testing.assert_allclose(cbn(x, y1, training=False), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_conditional_generator_uses_labels_through_cbn(arch):
  g = models.build_generator(arch, (32, 32, 3), LATENT, K, width=4)
  cbns = [l for l in _sublayers(g) if isinstance(l, layers.ConditionalBatchNorm)]
  assert len(cbns) == (3 if arch == "dcgan" else 6)
  z = tf.random.normal([B, LATENT], seed=7)
  y0, y1 = tf.zeros([B], tf.int32), tf.ones([B], tf.int32)
  # Identical per-class tables -> the label has no effect.
  np.testing.assert_allclose(g(z, y0, training=True), g(z, y1, training=True), atol=1e-6)
  cbns[-1].beta.assign(cbns[-1].beta + np.eye(K, cbns[-1].beta.shape[1], dtype=np.float32))
  diff = np.abs(g(z, y0, training=True).numpy() - g(z, y1, training=True).numpy())
  assert diff.max() > 1e-3


def test_projection_head_matches_manual_formula():
  d = models.build_discriminator("mlp", (2,), "projection", K, width=6)
  x = tf.random.normal([B, 2], seed=8)
  y = _labels()
  h = d.features(x, training=False).numpy()
  psi, embed = d.head_layer.psi, d.head_layer.embed
  table = embed.kernel.numpy()
  assert table.shape == (K, 6)
  want = (h @ psi.kernel.numpy())[:, 0] + psi.bias.numpy()[0] + np.sum(table[y.numpy()] * h, 1)
  got = d(x, labels=y, training=False)["logits"].numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  other = d(x, labels=(y + 1) % K, training=False)["logits"].numpy()
  assert np.abs(got - other).max() > 1e-3  # labels matter
  # Same formula on a spectrally normalised DCGAN D (the embedding is the wrapped Dense's kernel).
  d = models.build_discriminator("dcgan", (32, 32, 3), "projection", K, width=4,
                                 spectral_norm=True)
  x = tf.random.normal([B, 32, 32, 3], seed=9)
  h = d.features(x, training=False).numpy()
  psi, embed = d.head_layer.psi.layer, d.head_layer.embed.layer
  want = ((h @ psi.kernel.numpy())[:, 0] + psi.bias.numpy()[0]
          + np.sum(embed.kernel.numpy()[y.numpy()] * h, 1))
  np.testing.assert_allclose(d(x, labels=y, training=False)["logits"], want, rtol=1e-4,
                             atol=1e-4)


def test_ac_head_class_logits():
  d = models.build_discriminator("resnet", (32, 32, 3), "ac", 7, width=4)
  x = tf.random.normal([5, 32, 32, 3], seed=10)
  out = d(x, training=False)
  assert out["class_logits"].shape == (5, 7) and out["logits"].shape == (5,)
  h = d.features(x, training=False).numpy()
  c = d.head_layer.classifier
  np.testing.assert_allclose(out["class_logits"], h @ c.kernel.numpy() + c.bias.numpy(),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("build,match", [
    (lambda: models.build_generator("dcgan", (48, 48, 3)),
     "dcgan supports resolutions 32, 64; got 48"),
    (lambda: models.build_discriminator("dcgan", (28, 28, 1)), "32, 64; got 28.*[Pp]ad"),
    (lambda: models.build_generator("resnet", (256, 256, 3)), "32, 64, 128; got 256"),
    (lambda: models.build_discriminator("resnet", (32, 32, 4)), "channels 1, 3; got 4"),
    (lambda: models.build_generator("dcgan", (32, 64, 3)), "square"),
    (lambda: models.build_generator("dcgan", (2,)), "arch='mlp'"),
    (lambda: models.build_discriminator("mlp", (32, 32, 3)), r"flat shapes \(D,\)"),
    (lambda: models.build_generator("vgg"), "Choose one of: dcgan, mlp, resnet"),
    (lambda: models.build_discriminator("vgg"), "Choose one of: dcgan, mlp, resnet"),
    (lambda: models.build_discriminator(head="cgan"), "Choose one of: ac, plain, projection"),
    (lambda: models.build_discriminator(head="ac"), "head='ac' needs num_classes > 0"),
    (lambda: models.build_discriminator(head="projection"), "needs num_classes > 0"),
    (lambda: models.build_generator(latent_dim=0), "latent_dim"),
    (lambda: models.build_generator(num_classes=-1), "num_classes"),
    (lambda: models.build_discriminator(width=0), "width"),
])
def test_config_errors(build, match):
  with pytest.raises(errors.ConfigError, match=match):
    build()


def test_missing_labels_raise_config_error():
  g = models.build_generator("mlp", (2,), LATENT, K, width=4)
  with pytest.raises(errors.ConfigError, match="needs labels"):
    g(tf.zeros([2, LATENT]))
  d = models.build_discriminator("mlp", (2,), "projection", K, width=4)
  with pytest.raises(errors.ConfigError, match="projection .* needs labels"):
    d(tf.zeros([2, 2]))
  # Also while tracing. (Under autograph, TF re-raises a ValueError subclass such as ConfigError
  # from a tf.function as a StagingError with the same message.)
  with pytest.raises(errors.ConfigError, match="needs labels"):
    tf.function(lambda x: d(x)["logits"], autograph=False)(tf.zeros([2, 2]))
  # The AC head works without labels.
  d = models.build_discriminator("mlp", (2,), "ac", K, width=4)
  assert d(tf.zeros([2, 2]))["class_logits"].shape == (2, K)


@pytest.mark.parametrize("arch,shape,head", [("dcgan", (32, 32, 3), "projection"),
                                             ("resnet", (32, 32, 1), "ac"),
                                             ("mlp", (2,), "projection")])
def test_models_run_under_xla(arch, shape, head):
  g = models.build_generator(arch, shape, LATENT, K, width=4, spectral_norm=True)
  d = models.build_discriminator(arch, shape, head, K, width=4, spectral_norm=True)
  z = tf.random.normal([B, LATENT], seed=11)
  y = _labels()

  def forward(z, y, training):
    x = g(z, y, training=training)
    out = d(x, y, training=training)
    logits = out["logits"]
    if "class_logits" in out:
      logits += tf.reduce_logsumexp(out["class_logits"], axis=-1)
    return x, logits

  x_eager, logits_eager = forward(z, y, False)
  x_xla, logits_xla = tf.function(forward, jit_compile=True)(z, y, False)
  np.testing.assert_allclose(x_xla, x_eager, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(logits_xla, logits_eager, rtol=1e-3, atol=1e-3)

  opt = keras.optimizers.SGD(0.01)
  opt.build(d.trainable_variables)

  @tf.function(jit_compile=True)
  def d_step(z, y):
    with tf.GradientTape() as tape:
      _, logits = forward(z, y, True)
      loss = tf.reduce_mean(tf.nn.softplus(-logits))
    grads = tape.gradient(loss, d.trainable_variables)
    opt.apply(grads, d.trainable_variables)
    return loss

  sn = _sn_wrappers(d)[0]
  u_before = sn.vector_u.numpy().copy()
  assert np.isfinite(d_step(z, y).numpy())
  assert not np.allclose(sn.vector_u.numpy(), u_before)  # power iteration ran inside XLA


@pytest.mark.slow  # a pytest subprocess of its own: 20-45 s
def test_mirrored_strategy_build_and_synchronized_bn():
  if os.environ.get("TFADVGAN_ISOLATED") != "1":
    # Runs in a fresh process: after other MirroredStrategy functions in the same process, TF can
    # pair synchronized-BN collectives of different functions under one instance key ("Shape
    # mismatch in the collective instance 100"). A training run has one strategy and one step
    # function per process, so this only concerns the test process (docs/library.md, "The Python
    # API").
    proc = subprocess.run(
        # `-m slow -n 0`: this test alone, in that process (pytest.ini's addopts deselect slow
        # tests and start two xdist workers).
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow", "-n", "0",
         f"{os.path.abspath(__file__)}::test_mirrored_strategy_build_and_synchronized_bn"],
        env={**os.environ, "TFADVGAN_ISOLATED": "1"}, capture_output=True, text=True,
        timeout=600, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "1 passed" in proc.stdout, proc.stdout[-4000:]
    return
  devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
  assert len(devices) == 2
  strategy = distribute.make_strategy("mirrored", devices=devices)
  with strategy.scope():
    g = models.build_generator("dcgan", (32, 32, 3), LATENT, K, width=4, spectral_norm=True,
                               synchronized_bn=True)
    d = models.build_discriminator("dcgan", (32, 32, 3), "projection", K, width=4,
                                   synchronized_bn=True)
    cbn = layers.ConditionalBatchNorm(K, synchronized=True)
    cbn(tf.zeros([2, 3]), tf.zeros([2], tf.int32))
    variables = d.trainable_variables + g.trainable_variables
    opt = keras.optimizers.Adam(1e-3)
    opt.build(variables)

  def replica_step(z, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(d(g(z, y, training=True), y, training=True)["logits"])
    opt.apply(tape.gradient(loss, variables), variables)
    return loss

  # Replica 0 and 1 see very different halves of the global batch.
  x = np.concatenate([np.random.RandomState(0).normal(0, 1, (4, 3)),
                      np.random.RandomState(1).normal(5, 2, (4, 3))]).astype(np.float32)
  labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], np.int32)
  z = tf.random.normal([8, LATENT], seed=12)
  data = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors((z, tf.constant(labels), tf.constant(x))).repeat(2))

  # Separate functions: collectives of two `strategy.run` calls in one function are not ordered
  # across replicas and can pair up wrongly ("Shape mismatch in the collective instance").
  @tf.function
  def dist_step(z, y):
    return strategy.run(replica_step, (z, y))

  @tf.function
  def cbn_step(xb, y):
    return strategy.run(lambda xb, y: cbn(xb, y, training=True), (xb, y))

  for zb, yb, xb in data:
    dist_step(zb, yb)
    cbn_out = cbn_step(xb, yb)
  got = np.concatenate([t.numpy() for t in strategy.experimental_local_results(cbn_out)])
  np.testing.assert_allclose(got, _numpy_bn(x, 1.0, 0.0), rtol=1e-4, atol=1e-4)  # global stats
  for v in g.weights + d.weights:
    copies = [c.numpy() for c in v.value.values]
    np.testing.assert_allclose(copies[0], copies[1], err_msg=v.path)
