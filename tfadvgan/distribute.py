"""Distribution strategies from flags, the jit default per strategy, global-batch arithmetic.

Batch norm across replicas: a plain `BatchNormalization` normalises with the statistics of its own
replica's shard (B / replicas examples), so with BN models the replica count changes the maths.
Set `build_generator.synchronized_bn = True` / `build_discriminator.synchronized_bn = True` to use
cross-replica (synchronized) statistics; then results match one device on the same global batch.
"""

import gin
import tensorflow as tf

from tfadvgan import errors

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# One MirroredStrategy per device set and process: several instances over the same devices in one
# process collide in their collective-op keys (seen with synchronized BN: "Shape mismatch in the
# collective instance").
_MIRRORED = {}


@gin.configurable
def make_strategy(name="default", tpu=None, devices=None):
  """Returns a `tf.distribute.Strategy`.

  Args:
    name: default | mirrored | multi_worker | tpu.
    tpu: TPU address or name for `name='tpu'` ('' or 'local' for a TPU VM).
    devices: optional device list for `mirrored` (default: all GPUs, else all logical CPUs).
  """
  errors.check(name in STRATEGIES,
               f"Unknown strategy {name!r}. Choose one of: {', '.join(STRATEGIES)}.")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if devices is None:
      gpus = tf.config.list_logical_devices("GPU")
      devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    key = tuple(devices)
    if key not in _MIRRORED:
      _MIRRORED[key] = tf.distribute.MirroredStrategy(devices=devices)
    return _MIRRORED[key]
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  errors.check(tpu is not None,
               "--strategy=tpu needs --tpu=ADDRESS (or --tpu=local on a TPU VM).")
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu="" if tpu == "local" else tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, tf.errors.OpError) as e:
    raise errors.ConfigError(f"Could not reach TPU {tpu!r} ({e}). Check --tpu.") from None
  return tf.distribute.TPUStrategy(resolver)


def default_jit_compile(strategy):
  """XLA default: on for every strategy.

  One device and TPU compile the whole train step. Under Mirrored / MultiWorker strategies each
  replica's gradient computations are compiled and the cross-replica reduction and optimizer apply
  run outside XLA (`GAN.replica_compiled`): Keras `fit` with `jit_compile=True` compiled the whole
  `strategy.run` there and failed (a variable on another device; BUILD_NOTES.md).
  """
  del strategy
  return True


def resolve_jit_compile(strategy, jit_compile):
  """`jit_compile` None/'auto' -> the strategy default; else the boolean given."""
  if jit_compile in (None, "auto"):
    return default_jit_compile(strategy)
  errors.check(isinstance(jit_compile, bool),
               f"build_gan.jit_compile must be True, False or None (auto); got {jit_compile!r}.")
  return jit_compile


TPU_STEPS_PER_EXECUTION = 100


def is_tpu(strategy):
  return isinstance(strategy, tf.distribute.TPUStrategy)


def default_steps_per_execution(strategy):
  """Train steps per host call: 1, or `TPU_STEPS_PER_EXECUTION` under TPUStrategy (the host loop
  is amortised over many device steps, as Keras recommends for TPU)."""
  return TPU_STEPS_PER_EXECUTION if is_tpu(strategy) else 1


def per_replica_batch(strategy, global_batch_size):
  """Checks divisibility and returns the per-replica batch size."""
  replicas = strategy.num_replicas_in_sync
  errors.check(global_batch_size % replicas == 0,
               f"train.batch_size={global_batch_size} is not divisible by the {replicas} "
               f"replicas; use a multiple of {replicas}.")
  return global_batch_size // replicas
