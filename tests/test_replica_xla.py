"""XLA per replica under MirroredStrategy (2 logical CPUs): each method's gradient computations are
compiled with `tf.function(jit_compile=True)` inside `strategy.run`, the all-reduce and optimizer
applies stay outside, and the updates equal one device's."""

import gin
import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan.cli import common
from tfadvgan.gans import base
from tfadvgan.training import engine
from tfadvgan.training import run as loop

# BN-free MLPs on labelled 2-D points: one device and two replicas then compute the same maths.
COMMON = ["build_generator.arch = 'mlp'", "build_discriminator.arch = 'mlp'",
          "build_generator.width = 16", "build_discriminator.width = 16",
          "build_gan.latent_dim = 4", "make_optimizer.name = 'sgd'",
          "make_optimizer.learning_rate = 0.05", "GAN.n_dis = 2"]
METHODS = {
    **helpers.METHOD_BINDINGS,
    "gan": ["GAN.loss = 'non_saturating'"],
    "as_gan_pgd": ["build_gan.method = 'as_gan'", "ASGAN.epsilon = 0.05", "ASGAN.attack = 'pgd'",
                   "ASGAN.pgd_steps = 2", "ASGAN.random_start = False"],
}


def build(params, mirrored, jit):
  gin.clear_config()
  common.parse_gin([], COMMON + params + [f"build_gan.jit_compile = {jit}"])
  strategy = (distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]) if mirrored
              else tf.distribute.get_strategy())
  keras.utils.set_random_seed(11)
  with strategy.scope():
    return loop.build_gan((2,), 4, strategy=strategy)


def batches(gan, seed):
  rng = np.random.default_rng(seed)
  source = data_lib.from_arrays(rng.normal(size=(64, 2)).astype("f4") * 0.5,
                                rng.integers(0, 4, 64))
  return data_lib.make_train_dataset(source, 8, n_dis=gan.n_dis, latent_dim=4,
                                     conditional=gan.conditional, seed=seed).take(3)


# AS-GAN stays quick: its step is the baseline's plus a second compiled update, so it covers the
# baseline's compiled pieces too. DAT's split step is checked by the BN test below. The baseline
# (14 s), DAT, Rob-GAN, AS-GAN's PGD and Fast-RobGAN (35-70 s each beside another test process) run
# with `-m slow`.
SLOW = ("gan", "dat", "robgan", "as_gan_pgd", "fast_robgan")


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m
                                    for m in sorted(METHODS)])
def test_two_replicas_with_xla_per_replica_match_one_device(method):
  one = build(METHODS[method], mirrored=False, jit=False)
  two = build(METHODS[method], mirrored=True, jit=True)
  assert two.replica_jit is False  # set by the engine
  for a, b in zip(one.weights, two.weights):
    b.assign(a.numpy())
  log_one = engine.fit(one, batches(one, 3), 3)
  log_two = engine.fit(two, batches(two, 3), 3)
  assert two.replica_jit and two.distribute_strategy.num_replicas_in_sync == 2
  compiled = {"generator_gradients", "fakes"}
  if method != "fast_robgan":  # its replays replace the perturb_real hook
    compiled.add("perturb_real")
  if method.startswith("as_gan"):
    compiled.add("as_gan_second_update")
  if method == "dat":  # its targets all-reduce between two compiled pieces
    compiled |= {"dat_target_sums", "dat_discriminator_gradients"}
  else:
    compiled.add("discriminator_gradients")
  assert compiled <= set(two._compiled_fns), two._compiled_fns  # pylint: disable=protected-access
  moved = 0
  for a, b, init in zip(one.weights, two.weights,
                        build(METHODS[method], mirrored=False, jit=False).weights):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
    moved += int(not np.allclose(a.numpy(), init.numpy()))
  assert moved >= 4  # the updates happened
  for key in set(log_one) - {"d_grad_norm", "g_grad_norm"}:  # those are per replica shard
    assert log_two[key] == pytest.approx(log_one[key], rel=1e-5, abs=1e-6), key


def test_dat_split_step_updates_d_state_once():
  """DAT's first compiled piece (the targets' clean pass) must put D's BN moving statistics back:
  two replicas with XLA then equal two replicas without it, moving statistics included (without the
  restore they would move twice as far). One D update: with BN on 4-example replica batches, float
  differences grow by ~1e-4 per update, which would hide the check."""
  params = METHODS["dat"] + ["MLPDiscriminator.use_batch_norm = True", "GAN.n_dis = 1",
                             "MLPDiscriminator.depth = 2", "MLPGenerator.depth = 2"]
  plain = build(params, mirrored=True, jit=False)
  jitted = build(params, mirrored=True, jit=True)
  for a, b in zip(plain.weights, jitted.weights):
    b.assign(a.numpy())
  before = {v.path: v.numpy() for v in plain.discriminator.non_trainable_variables}
  assert len(before) >= 2 and all("moving" in p for p in before), sorted(before)
  engine.fit(plain, batches(plain, 5), 1)
  engine.fit(jitted, batches(jitted, 5), 1)
  assert jitted.replica_jit and not plain.replica_jit
  assert "dat_target_sums" in jitted._compiled_fns  # pylint: disable=protected-access
  for a, b in zip(plain.weights, jitted.weights):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
  moved = [v.path for v in plain.discriminator.non_trainable_variables
           if np.abs(v.numpy() - before[v.path]).max() > 1e-4]
  assert len(moved) == len(before), moved  # the statistics did move, by more than the tolerance


def test_xla_is_really_used_per_replica(monkeypatch):
  """A host op (tf.numpy_function) in a compiled piece fails under XLA, and only there."""
  def perturb_with_a_host_op(self, real, labels, step_seed):
    del labels, step_seed
    return tf.numpy_function(lambda x: x, [real], tf.float32, stateful=False)
  monkeypatch.setattr(base.GAN, "perturb_real", perturb_with_a_host_op)
  plain = build(METHODS["gan"], mirrored=True, jit=False)
  engine.fit(plain, batches(plain, 4), 1)  # runs without XLA
  compiled = build(METHODS["gan"], mirrored=True, jit=True)
  with pytest.raises(Exception, match="(?i)xla|compil|PyFunc|EagerPyFunc|NumpyFunction"):
    engine.fit(compiled, batches(compiled, 4), 1)


def test_synchronized_bn_turns_per_replica_xla_off_or_is_refused_when_asked():
  gin.clear_config()
  common.parse_gin([], ["build_generator.width = 8", "build_discriminator.width = 8",
                        "build_generator.synchronized_bn = True", "build_gan.latent_dim = 8"])
  mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  gan = loop.build_gan((32, 32, 1), 0, strategy=mirrored)
  assert gan.jit_compile is False
  with gin.unlock_config():
    gin.bind_parameter("build_gan.jit_compile", True)
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.ConfigError, match="synchronized batch norm"):
    loop.build_gan((32, 32, 1), 0, strategy=mirrored)
  # Without synchronized BN, XLA is on by default under Mirrored too.
  with gin.unlock_config():
    gin.bind_parameter("build_gan.jit_compile", None)
    gin.bind_parameter("build_generator.synchronized_bn", False)
  assert loop.build_gan((32, 32, 1), 0, strategy=mirrored).jit_compile is True
