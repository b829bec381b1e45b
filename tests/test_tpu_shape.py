"""A TPU-shaped step, as far as a CPU can show it: every config's full train step compiles under
XLA (`jit_compile=True`) with soft device placement off, on static shapes; steps_per_execution
defaults to many steps per host call under TPUStrategy."""

import glob
import os
import subprocess
import sys

import gin
import helpers
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan.cli import common
from tfadvgan.training import engine
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"),
                                                recursive=True)
    if os.sep + "common" + os.sep not in p and os.sep + "studies" + os.sep not in p)
# One config per method and loss family stays in the quick suite (each XLA compile costs seconds);
# the others share their code paths and run with `-m slow`.
# Rob-GAN's PGD step shares Fast-RobGAN's AC head and the attacks' code; it compiles in ~45 s
# under load, so it runs with the slow tests.
# AS-GAN's step (13 s) also compiles per replica in test_replica_xla's quick cases.
# The baseline GAN's step (DCGAN-32 of base/dcgan_fmnist.gin, 14 s; gan_ring.gin, 8 s) is a part
# of DAT-WGAN-GP's, which stays quick; the MLP nets compile under XLA in test_models.
QUICK = ("gin_configs/dat/dat_wgan_gp_fmnist.gin", "gin_configs/fast_robgan/fast_robgan_fmnist.gin")
TINY = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
        "build_gan.jit_compile = True", "build_gan.run_eagerly = False"]


@pytest.fixture
def no_soft_placement():
  before = tf.config.get_soft_device_placement()
  tf.config.set_soft_device_placement(False)
  yield
  tf.config.set_soft_device_placement(before)


def step_config_under_xla(config):
  """Builds `config` at TINY size and runs one step as one XLA computation, soft placement off."""
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, config)], TINY)
  shape, classes = helpers.shape_of(gin.query_parameter("dataset.source"))
  gan = loop.build_gan(shape, classes)
  rng = np.random.default_rng(7)
  n = 64
  images = rng.uniform(-1, 1, (n,) + shape).astype("f4")
  source = data_lib.from_arrays(images, rng.integers(0, max(classes, 1), n) if classes else None)
  ds = data_lib.make_train_dataset(source, 4, n_dis=gan.n_dis, latent_dim=gan.generator.latent_dim,
                                   conditional=gan.conditional, seed=0)
  for spec in tf.nest.flatten(ds.element_spec):  # static shapes, as TPU needs
    assert spec.shape.is_fully_defined(), spec
  run = engine.for_gan(gan)
  assert run.jit_compile and not gan.replica_jit  # the whole step is one XLA computation
  logs = engine.fit(gan, ds, 1)
  assert int(gan.global_step.numpy()) == 1
  assert all(np.isfinite(v) for v in logs.values()), logs


@pytest.mark.parametrize("config", [
    c if c in QUICK else pytest.param(c, marks=pytest.mark.slow) for c in CONFIGS])
def test_every_config_steps_under_xla_without_soft_placement(config, no_soft_placement):
  if config in QUICK:
    step_config_under_xla(config)
    return
  # The slow configs each run in a fresh process: the XLA executables a process compiles stay in
  # its device's compilation cache for the process's life (about 0.5 GB per large config), so
  # ~50 configs in one pytest worker would fill the machine's memory.
  done = subprocess.run([sys.executable, os.path.abspath(__file__), config], cwd=ROOT,
                        capture_output=True, text=True, timeout=1800, check=False)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def test_a_host_op_in_the_step_fails_under_xla(no_soft_placement, monkeypatch):
  """What the test above relies on: an op XLA cannot compile (a host callback) is an error, not
  a silent fallback to the host."""
  from tfadvgan.gans import base  # pylint: disable=g-import-not-at-top
  def host_perturb(self, real, labels, step_seed):
    del labels, step_seed
    return tf.numpy_function(lambda x: x, [real], tf.float32, stateful=False)
  monkeypatch.setattr(base.GAN, "perturb_real", host_perturb)
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs/base/gan_ring.gin")], TINY)
  gan = loop.build_gan((2,), 0)
  source = data_lib.from_arrays(np.zeros((16, 2), "f4"))
  ds = data_lib.make_train_dataset(source, 4, latent_dim=gan.generator.latent_dim, seed=0)
  with gin.unlock_config():
    gin.bind_parameter("build_gan.jit_compile", False)
  plain = loop.build_gan((2,), 0)
  engine.fit(plain, ds, 1)  # the same step runs without XLA
  with pytest.raises(Exception, match="(?i)xla|compil|PyFunc|EagerPyFunc|NumpyFunction"):
    engine.fit(gan, ds, 1)


def test_steps_per_execution_defaults_to_many_under_tpu(monkeypatch):
  one_device = tf.distribute.get_strategy()
  assert distribute.default_steps_per_execution(one_device) == 1
  monkeypatch.setattr(distribute, "is_tpu", lambda strategy: True)
  assert distribute.default_steps_per_execution(one_device) == distribute.TPU_STEPS_PER_EXECUTION
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs/base/gan_ring.gin")], [])
  assert loop.build_gan((2,), 0).steps_per_execution == distribute.TPU_STEPS_PER_EXECUTION
  with gin.unlock_config():
    gin.bind_parameter("build_gan.steps_per_execution", 4)
  assert loop.build_gan((2,), 0).steps_per_execution == 4


if __name__ == "__main__":  # one slow config, in its own process (see the test above)
  tf.config.set_soft_device_placement(False)
  step_config_under_xla(sys.argv[1])
