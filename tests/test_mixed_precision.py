"""Mixed precision (`train.mixed_precision`): float32 variables, 16-bit compute, float32 logits,
losses and attacks; loss scaling under float16; float32 checkpoints that restore anywhere."""

import os

import gin
import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan import losses as losses_lib
from tfadvgan import models
from tfadvgan.cli import common
from tfadvgan.gans import base
from tfadvgan.gans import gradients as gradients_lib
from tfadvgan.training import benchmark
from tfadvgan.training import checkpoints
from tfadvgan.training import engine
from tfadvgan.training import run as loop
from tfadvgan import optimizers

POLICIES = ("none", "bfloat16", "float16")
COMPUTE = {"none": "float32", "bfloat16": "bfloat16", "float16": "float16"}
# BN-free MLPs on labelled 2-D points, run eagerly (tracing would dominate these few steps; the
# compiled and XLA paths: test_xla_step_under_both_policies).
MLP = ["build_generator.arch = 'mlp'", "build_discriminator.arch = 'mlp'",
       "build_generator.width = 16", "build_discriminator.width = 16",
       "build_gan.latent_dim = 4", "build_gan.run_eagerly = True", "GAN.n_dis = 2"]
METHODS = {
    **helpers.METHOD_BINDINGS,
    "gan": ["GAN.loss = 'non_saturating'", "GAN.penalty = 'wgan_gp'", "GAN.ema_decay = 0.9"],
}
EXTRA_LOGS = {"gan": {"penalty"}, "as_gan": {"as_d_loss", "d_adv", "epsilon"},
              "dat": {"dat_adv_loss"}, "robgan": {"class_real", "g_class"},
              "fast_robgan": {"kl_fake", "delta_abs"}}


def build(params, policy, shape=(2,), classes=4, seed=11):
  gin.clear_config()
  common.parse_gin([], list(params))
  keras.utils.set_random_seed(seed)
  return loop.build_gan(shape, classes, mixed_precision=policy)


def points(gan, seed, steps=5):
  rng = np.random.default_rng(seed)
  source = data_lib.from_arrays(rng.normal(size=(64, 2)).astype("f4") * 0.5,
                                rng.integers(0, 4, 64))
  return data_lib.make_train_dataset(source, 8, n_dis=gan.n_dis, latent_dim=4,
                                     conditional=gan.conditional, seed=seed).take(steps)


def compute_dtypes(model):
  """{compute dtype} of every layer of `model` that owns weights."""
  return {layer.compute_dtype for layer in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
          if layer.weights and not isinstance(layer, keras.Model)}


@pytest.mark.parametrize("policy", [pytest.param("none", marks=pytest.mark.slow),  # float32:
                                    "bfloat16", "float16"])  # every other test file trains it
@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_trains_two_steps_with_finite_logs(method, policy):
  gan = build(MLP + METHODS[method], policy)
  before = [w.numpy().copy() for w in gan.weights]
  logs = engine.fit(gan, points(gan, 3), 2)  # eager steps: ~1 s each
  assert int(gan.global_step.numpy()) == 2
  assert EXTRA_LOGS[method] | {"d_loss", "g_loss", "d_grad_norm"} <= set(logs)
  assert all(np.isfinite(v) for v in logs.values()), logs
  assert ("d_loss_scale" in logs) == (policy == "float16")
  if policy == "float16":  # the initial scale 2**15, halved on each skipped update
    assert 0 < logs["d_loss_scale"] <= 2.0 ** 15 and 0 < logs["g_loss_scale"] <= 2.0 ** 15
  assert compute_dtypes(gan.discriminator) == {COMPUTE[policy]}
  assert compute_dtypes(gan.generator) == {COMPUTE[policy]}
  assert {w.dtype for w in gan.weights} == {"float32"}
  moved = sum(not np.allclose(a, w.numpy()) for a, w in zip(before, gan.weights))
  assert moved >= 4
  assert keras.config.dtype_policy().name == "float32"  # nothing leaked out of build_gan


@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_layer_dtypes_and_float32_outputs_on_a_dcgan(policy):
  gan = build(["build_generator.width = 4", "build_discriminator.width = 4",
               "build_gan.latent_dim = 8", "build_discriminator.head = 'ac'",
               "build_gan.conditional = True", "GAN.ema_decay = 0.9"], policy, (32, 32, 1))
  for model in (gan.generator, gan.discriminator):
    assert compute_dtypes(model) == {COMPUTE[policy]}, model.name
    assert {layer.variable_dtype for layer in model._flatten_layers()} == {"float32"}  # pylint: disable=protected-access
    assert {w.dtype for w in model.weights} == {"float32"}
  # BN layers included (their statistics are float32 variables too).
  assert any(isinstance(layer, keras.layers.BatchNormalization)
             for layer in gan.discriminator._flatten_layers())  # pylint: disable=protected-access
  assert compute_dtypes(gan.generator_ema) == {"float32"}  # the sampling copy stays float32
  labels = tf.constant([0, 1, 2, 3])
  images = gan.generator(tf.zeros([4, 8]), labels, training=False)
  assert images.dtype == tf.float32
  out = gan.discriminator(images, labels, training=True)
  assert out["logits"].dtype == tf.float32 and out["class_logits"].dtype == tf.float32
  assert keras.config.dtype_policy().name == "float32"
  assert isinstance(gan.d_optimizer, optimizers.LossScaleOptimizer) == (policy == "float16")
  assert isinstance(gan.g_optimizer, optimizers.LossScaleOptimizer) == (policy == "float16")
  # A float32 build after it in the same process is float32 throughout.
  plain = build(["build_generator.width = 4", "build_discriminator.width = 4"], "none",
                (32, 32, 1))
  assert compute_dtypes(plain.discriminator) == {"float32"}
  assert compute_dtypes(plain.generator) == {"float32"}


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def test_linear_d_step_in_bfloat16_matches_the_float32_numpy_reference():
  """D linear (no hidden layer), non-saturating loss, SGD: one D update vs NumPy."""
  params = MLP + ["MLPDiscriminator.depth = 0", "make_optimizer.name = 'sgd'",
                  "make_optimizer.learning_rate = 0.5", "GAN.n_dis = 1"]
  f32, bf16 = build(params, "none"), build(params, "bfloat16")
  for a, b in zip(f32.weights, bf16.weights):
    b.assign(a.numpy())
  rng = np.random.default_rng(5)
  real = rng.normal(size=(16, 2)).astype("f4")
  z = rng.normal(size=(16, 4)).astype("f4")
  fake = f32.generator(z, None, training=True).numpy()  # float32 G; training: BN-free MLP anyway
  kernel, bias = [v.numpy() for v in f32.discriminator.trainable_variables]
  t_r, t_f = (real @ kernel + bias)[:, 0], (fake @ kernel + bias)[:, 0]
  # d/dt softplus(-t) = -sigmoid(-t); d/dt softplus(t) = sigmoid(t); mean over the batch.
  g_r, g_f = -_sigmoid(-t_r) / 16, _sigmoid(t_f) / 16
  grad_kernel = real.T @ g_r[:, None] + fake.T @ g_f[:, None]
  grad_bias = np.array([g_r.sum() + g_f.sum()])
  deltas = {}
  for name, gan in (("f32", f32), ("bf16", bf16)):
    gan.discriminator_round(tf.constant(real), None, tf.constant(z), None, 0)
    new_kernel, new_bias = [v.numpy() for v in gan.discriminator.trainable_variables]
    deltas[name] = np.concatenate([(kernel - new_kernel).ravel(), bias - new_bias]) / 0.5
  reference = np.concatenate([grad_kernel.ravel(), grad_bias])
  np.testing.assert_allclose(deltas["f32"], reference, rtol=1e-5, atol=1e-6)
  # bfloat16 keeps 8 significant bits (2**-8 = 0.4% per rounding): within 3% of the scale.
  scale = np.abs(reference).max()
  np.testing.assert_allclose(deltas["bf16"], reference, rtol=0, atol=0.03 * scale)
  assert np.abs(deltas["bf16"] - reference).max() > 1e-5 * scale  # it really ran in bf16
  assert bf16.discriminator.trainable_variables[0].dtype == "float32"


def test_as_gan_fgsm_direction_in_bfloat16_matches_float32():
  params = ["build_gan.method = 'as_gan'", "build_generator.width = 8",
            "build_discriminator.width = 8", "build_gan.latent_dim = 16"]
  f32, bf16 = build(params, "none", (32, 32, 1)), build(params, "bfloat16", (32, 32, 1))
  assert f32.attack == bf16.attack == "fgsm"  # its direction: the D tape's input gradient
  for a, b in zip(f32.weights, bf16.weights):
    b.assign(a.numpy())
  rng = np.random.default_rng(9)
  # Smooth images (a blurred random field) in [-1, 1], not independent pixel noise.
  field = rng.normal(size=(32, 8, 8, 1)).astype("f4")
  real = tf.constant(np.tanh(tf.image.resize(field, (32, 32)).numpy()))
  fake = f32.generator(tf.constant(rng.normal(size=(32, 16)).astype("f4")), None, training=True)
  seed = tf.constant([1, 2])
  signs = {}
  for name, gan in (("f32", f32), ("bf16", bf16)):
    _, (real_grad,), _ = gan._discriminator_gradients(real, None, fake, None, seed, sources=[real])  # pylint: disable=protected-access
    assert real_grad.dtype == tf.float32
    signs[name] = np.sign(real_grad.numpy())
  assert np.mean(signs["f32"] != 0) > 0.99  # a direction on (almost) every pixel
  agree = np.mean(signs["f32"] == signs["bf16"])
  assert agree > 0.99, agree


class TinyLoss(losses_lib.Loss):
  """A Wasserstein-like loss times 1e-8: d(loss)/d(logit) = 1e-8 / B, below float16's smallest
  subnormal (6e-8), so float16 backprop flushes every gradient to zero without loss scaling."""

  name = "tiny"

  def g1(self, t):
    return 1e-8 * t

  def g2(self, t):
    return -1e-8 * t

  def g(self, t_fake):
    return -1e-8 * t_fake


def test_float16_loss_scaling_keeps_an_underflowing_update_alive():
  rng = np.random.default_rng(2)
  real = tf.constant(rng.normal(size=(8, 2)).astype("f4"))
  z = tf.constant(rng.normal(size=(8, 4)).astype("f4"))
  gin.clear_config()
  common.parse_gin([], ["MLPDiscriminator.depth = 0", "MLPGenerator.depth = 1",
                        "MLPGenerator.width = 8"])
  weights = None
  deltas = {}
  for name, policy, wrap in (("f32", "none", False), ("scaled", "float16", True),
                             ("unscaled", "float16", False)):
    keras.utils.set_random_seed(4)
    with models.dtype_policy(policy):
      g = models.build_generator(arch="mlp", output_shape=(2,), latent_dim=4)
      d = models.build_discriminator(arch="mlp", input_shape=(2,))
    gan = base.GAN(g, d, loss=TinyLoss())
    d_opt = keras.optimizers.SGD(learning_rate=1e6)
    g_opt = keras.optimizers.SGD(learning_rate=1e6)
    if wrap:
      d_opt, g_opt = optimizers.loss_scaled(d_opt), optimizers.loss_scaled(g_opt)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt)
    if weights is None:
      weights = [w.numpy() for w in gan.weights]
    for w, value in zip(gan.weights, weights):
      w.assign(value)
    gan.discriminator_round(real, None, z, None, 0)
    deltas[name] = np.concatenate([(a - w.numpy()).ravel() for a, w in zip(
        weights[-len(gan.discriminator.weights):], gan.discriminator.weights)])
  assert np.all(deltas["unscaled"] == 0.0)  # flushed to zero in float16
  assert np.abs(deltas["scaled"]).max() > 1e-3
  scale = np.abs(deltas["f32"]).max()
  np.testing.assert_allclose(deltas["scaled"], deltas["f32"], rtol=0, atol=0.02 * scale)


def test_float16_skipped_update_still_counts_and_unscaled_input_gradient_is_zero():
  gan = build(MLP + METHODS["as_gan"] + ["GAN.n_dis = 1"], "float16")
  opt = gan.d_optimizer
  opt.dynamic_scale.assign(1e38)  # any gradient overflows: the update must be skipped
  before = [w.numpy().copy() for w in gan.discriminator.trainable_variables]
  rng = np.random.default_rng(1)
  real = tf.constant(rng.normal(size=(8, 2)).astype("f4"))
  fake = gan.generator(tf.constant(rng.normal(size=(8, 4)).astype("f4")), None)
  seed = tf.constant([1, 2])
  grads, (real_grad,), _ = gan._discriminator_gradients(real, None, fake, None, seed, sources=[real])  # pylint: disable=protected-access
  assert not gradients_lib.all_finite(grads)
  np.testing.assert_array_equal(real_grad.numpy(), 0.0)  # no inf/NaN reaches the attack
  norm = gan.apply_discriminator_gradients(grads)
  assert float(norm) == 0.0
  for a, w in zip(before, gan.discriminator.trainable_variables):
    np.testing.assert_array_equal(a, w.numpy())
  assert int(opt.iterations.numpy()) == 1  # counted although skipped
  assert float(opt.dynamic_scale.numpy()) == pytest.approx(5e37)


def small_npz(tmp_path, n=32):
  rng = np.random.default_rng(0)
  path = str(tmp_path / "data.npz")
  np.savez(path, images=rng.integers(0, 256, (n, 32, 32, 1)).astype(np.uint8),
           labels=(np.arange(n) % 10).astype(np.int64))
  return path


def run_params(tmp_path, policy, steps):
  return ["build_generator.width = 4", "build_discriminator.width = 4", "build_gan.latent_dim = 8",
          "train.batch_size = 4", f"train.num_steps = {steps}", "train.log_every_steps = 1",
          "train.checkpoint_every_steps = 2", "train.sample_every_steps = 100",
          "train.diagnose_every_steps = 0", "train.verbose = 0", "build_gan.run_eagerly = True",
          "dataset.source = 'npz'", f"dataset.path = '{small_npz(tmp_path)}'",
          f"train.mixed_precision = '{policy}'"]


@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_checkpoints_resume_and_restore_as_float32(tmp_path, policy):
  model_dir = str(tmp_path / "run")
  gin.clear_config()
  common.parse_gin([], run_params(tmp_path, policy, 2))
  gan = loop.train(model_dir)
  assert int(gan.global_step.numpy()) == 2
  gin.clear_config()
  common.parse_gin([], run_params(tmp_path, policy, 4))
  gan = loop.train(model_dir)  # resumes from ckpt-2 (the loss-scale state included)
  assert int(gan.global_step.numpy()) == 4
  assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")
  trained = {v.path: v.numpy() for v in gan.generator.weights + gan.discriminator.weights}
  if policy == "float16":
    scale = float(gan.d_optimizer.dynamic_scale.numpy())
  restored, _, path = loop.restore_run(model_dir)  # what eval and sample.py use
  assert path.endswith("ckpt-4")
  assert restored.mixed_precision == "none"
  assert compute_dtypes(restored.generator) == {"float32"}
  assert compute_dtypes(restored.discriminator) == {"float32"}
  assert not isinstance(restored.d_optimizer, keras.optimizers.LossScaleOptimizer)
  for v in restored.generator.weights + restored.discriminator.weights:
    np.testing.assert_array_equal(v.numpy(), trained[v.path], err_msg=v.path)
  assert int(restored.global_step.numpy()) == 4
  if policy == "float16":  # a float16 build restores the loss scale too
    gin.clear_config()
    common.parse_gin([], run_params(tmp_path, policy, 4))
    again = loop.build_gan((32, 32, 1), 10, mixed_precision="float16")
    checkpoints.restore(checkpoints.make_manager(again, model_dir))
    assert float(again.d_optimizer.dynamic_scale.numpy()) == scale
  # The policy is part of the training config: resuming with another one is refused.
  gin.clear_config()
  common.parse_gin([], run_params(tmp_path, "none", 6))
  with pytest.raises(errors.ConfigError, match=f"train.mixed_precision: saved '{policy}' -> "
                     "now 'none'"):
    loop.train(model_dir)


def test_unknown_policy_is_one_config_error_and_writes_nothing(tmp_path):
  gin.clear_config()
  common.parse_gin([], run_params(tmp_path, "fp16", 2))
  with pytest.raises(errors.ConfigError) as info:
    loop.train(str(tmp_path / "run"))
  assert common.strip_gin_context(str(info.value)) == (
      "train.mixed_precision must be one of 'none', 'bfloat16', 'float16'; got 'fp16'.")
  assert not os.path.exists(tmp_path / "run")


def test_benchmark_reads_the_policy_from_gin():
  gin.clear_config()
  common.parse_gin([], ["train.mixed_precision = 'bfloat16'"])
  assert benchmark.configured_mixed_precision() == "bfloat16"
  gin.clear_config()
  assert benchmark.configured_mixed_precision() == "none"


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_xla_step_under_both_policies(policy):
  """The default single-device path (the whole step under XLA) in bf16 and fp16."""
  if True:  # pylint: disable=using-constant-test
    gan = build([p for p in MLP if "run_eagerly" not in p] + METHODS["as_gan"], policy)
    assert gan.jit_compile
    logs = engine.fit(gan, points(gan, 4, steps=2), 2)
    assert all(np.isfinite(v) for v in logs.values()), (policy, logs)
    assert int(gan.global_step.numpy()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
@pytest.mark.parametrize("method", ["as_gan", "dat", "fast_robgan"])
def test_two_replicas_with_per_replica_xla(method, policy):
  """Mirrored on the 2 logical CPUs of conftest, XLA per replica (`GAN.replica_compiled`)."""
  gin.clear_config()
  common.parse_gin([], [p for p in MLP if "run_eagerly" not in p] + METHODS[method]
                   + ["build_gan.jit_compile = True"])
  strategy = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  keras.utils.set_random_seed(11)
  with strategy.scope():
    gan = loop.build_gan((2,), 4, strategy=strategy, mixed_precision=policy)
  logs = engine.fit(gan, points(gan, 3, steps=3), 3)
  assert gan.replica_jit and int(gan.global_step.numpy()) == 3
  assert all(np.isfinite(v) for v in logs.values()), logs
  assert compute_dtypes(gan.discriminator) == {COMPUTE[policy]}
