"""Distribution strategies from flags, the jit default per strategy, global-batch arithmetic, and
per-replica state that checkpoints as one global tensor (`PerReplicaState`).

Batch norm across replicas: a plain `BatchNormalization` normalises with the statistics of its own
replica's shard (B / replicas examples), so with BN models the replica count changes the maths.
Set `build_generator.synchronized_bn = True` / `build_discriminator.synchronized_bn = True` to use
cross-replica (synchronized) statistics; then results match one device on the same global batch.
"""

import json
import os

import gin
import tensorflow as tf

from tfadvgan import errors

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# One MirroredStrategy per device set and process: several instances over the same devices in one
# process collide in their collective-op keys (seen with synchronized BN: "Shape mismatch in the
# collective instance").
_MIRRORED = {}


SINGLE_MACHINE = ("on one machine use --strategy=default (one device) or --strategy=mirrored (all "
                  "local GPUs, else CPUs)")
TRAINING_TASKS = ("chief", "worker")


def _tf_config_problem(text):
  """None if TF_CONFIG (the environment variable's text) describes this task of a cluster of two
  or more training workers; else what is wrong with it, in one sentence."""
  if not text or not text.strip():
    return "--strategy=multi_worker needs TF_CONFIG, which is not set"
  try:
    spec = json.loads(text)
  except ValueError as e:
    return f"TF_CONFIG is not valid JSON ({e})"
  if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict) or not spec["cluster"]:
    return 'TF_CONFIG has no "cluster" (e.g. {"worker": ["host0:port", "host1:port"]})'
  cluster = spec["cluster"]
  for job, addresses in cluster.items():
    if job not in TRAINING_TASKS:
      return (f"TF_CONFIG's cluster has a {job!r} job; MultiWorkerMirroredStrategy trains only "
              f"with {' and '.join(repr(t) for t in TRAINING_TASKS)} tasks")
    if not isinstance(addresses, list) or not addresses or not all(
        isinstance(a, str) and ":" in a for a in addresses):
      return f'TF_CONFIG\'s cluster "{job}" must be a list of "host:port" addresses'
  task = spec.get("task")
  if not isinstance(task, dict) or "type" not in task or "index" not in task:
    return ('TF_CONFIG has no "task" (this worker\'s place in the cluster, e.g. '
            '{"type": "worker", "index": 0})')
  kind, index = task["type"], task["index"]
  if kind not in cluster:
    return (f"TF_CONFIG's task type {kind!r} is not a job of its cluster "
            f"({', '.join(sorted(cluster))})")
  if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
    return (f"TF_CONFIG's task index {index!r} is out of range: its cluster has "
            f"{len(cluster[kind])} {kind!r} task(s), indices 0-{len(cluster[kind]) - 1}")
  if sum(len(cluster[job]) for job in cluster) < 2:
    return "TF_CONFIG describes a cluster of one worker; --strategy=multi_worker needs two or more"
  return None


def check_tf_config(environ=None):
  """Raises one ConfigError line unless TF_CONFIG in `environ` (default: os.environ) describes this
  task of a cluster of two or more workers (run before MultiWorkerMirroredStrategy is built: TF
  itself gives a JSON traceback, or trains as a lone chief when TF_CONFIG is missing)."""
  problem = _tf_config_problem((os.environ if environ is None else environ).get("TF_CONFIG"))
  if problem is not None:
    hint = SINGLE_MACHINE if "not set" in problem or "one worker" in problem else (
        "every worker needs the same cluster and its own task")
    raise errors.ConfigError(f"{problem}; {hint}.")


@gin.configurable
def make_strategy(name="default", tpu=None, devices=None, collective_timeout_seconds=None):
  """Returns a `tf.distribute.Strategy`.

  Args:
    name: default | mirrored | multi_worker | tpu.
    tpu: TPU address or name for `name='tpu'` ('' or 'local' for a TPU VM).
    devices: optional device list for `mirrored` (default: all GPUs, else all logical CPUs).
    collective_timeout_seconds: multi_worker only: a cross-worker collective that waits longer than
      this fails (`tf.distribute.experimental.CommunicationOptions.timeout_seconds`), so a peer
      that hangs without closing its connections stops the others too. None: wait for ever (a
      killed peer is seen at once anyway: its connections reset). It bounds every collective, so
      it must exceed the longest wait of one worker for another (a chief's checkpoint save).
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
    check_tf_config()
    errors.check_float("make_strategy.collective_timeout_seconds", collective_timeout_seconds,
                       low=0, low_inclusive=False, allow_none=True)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout_seconds))
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
  `strategy.run` there and failed (a variable on another device; docs/design.md, "Decisions").
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


# `tf.__internal__.tracking.Trackable` is the one TF class whose `_serialize_to_tensors` /
# `_restore_from_tensors` let an object write a tensor of its own making to a checkpoint (a
# SyncOnRead variable writes one aggregated value). It is reached through the exported
# `tf.__internal__` namespace, not `tensorflow.python`; tests/test_imports.py fails by name if it
# moves (docs/design.md, "Layers and imports").
_Trackable = tf.__internal__.tracking.Trackable


class PerReplicaState(_Trackable):
  """Checkpoints a per-replica variable as the concatenation of its replica components.

  `variable` is a plain variable (one device) or a SyncOnRead variable (aggregation
  ONLY_FIRST_REPLICA) with one component per replica, each of shape [b, ...]: every replica reads
  and assigns only its own component, in replica context, with no cross-replica communication. A
  SyncOnRead variable would checkpoint a single aggregated (or first-replica) value and restore it
  to every replica, so the variable itself is not checkpointed; this object is. The checkpoint
  holds one tensor [replicas * b, ...] under the key "value": the components in replica order,
  i.e. the state over the *global* batch (the rows the strategy gives each replica). Restoring
  slices it back, so any replica count with the same global batch works. `name` appears in error
  messages. Fast-RobGAN's persistent perturbation is one.
  """

  def __init__(self, variable, name="per-replica state", setting="train.batch_size",
               global_batch_size=None):
    super().__init__()
    self._variable = variable
    self._name = name
    self._setting = setting
    self.global_batch_size = global_batch_size  # rows over all replicas (None: not given)

  @property
  def variable(self):
    return self._variable

  def read(self, batch_rows):
    """This replica's component as a tensor, checked against a batch of `batch_rows` rows (None:
    unknown, not checked); a mismatch names the knob that sizes the state."""
    value = tf.convert_to_tensor(self._variable.value())
    errors.check(batch_rows is None or value.shape[0] == batch_rows,
                 f"{self._name} was made for {value.shape[0]} examples per replica but the batch "
                 f"has {batch_rows}: set {self._setting} to the global batch size of the run.")
    return value

  def components(self):
    """This process's per-replica variables, in replica order."""
    if isinstance(self._variable, tf.distribute.DistributedValues):
      return list(self._variable.values)
    return [self._variable]

  def _strategy(self):
    if isinstance(self._variable, tf.distribute.DistributedValues):
      return self._variable.distribute_strategy
    return None

  def global_value(self):
    """[replicas * b, ...] tensor: every replica's component, in replica order, gathered from
    every worker (a collective under multi-worker: every worker saves checkpoints together)."""
    strategy = self._strategy()
    if strategy is None:
      return tf.identity(self._variable.read_value())
    per_replica = strategy.run(lambda: tf.identity(self._variable.read_value()))
    return strategy.gather(per_replica, axis=0)

  def assign_global(self, value):
    """Assigns rows [r * b, (r + 1) * b) of `value` to the component of global replica r."""
    value = tf.convert_to_tensor(value, self._variable.dtype)
    components = self.components()
    strategy = self._strategy()
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    ids = list(range(len(components)))
    if strategy is not None and replicas > len(components):  # multi-worker: the global ids
      ids = [int(i) for i in strategy.experimental_local_results(strategy.run(
          lambda: tf.distribute.get_replica_context().replica_id_in_sync_group))]
    rows = int(components[0].shape[0])
    errors.check(value.shape[0] == rows * replicas,
                 f"{self._name}: the saved value has {value.shape[0]} rows but this run "
                 f"holds {replicas} replica(s) x {rows}; resume with the same "
                 f"{self._setting}.")
    assigns = []
    for r, component in zip(ids, components):
      with tf.device(component.device):
        assigns.append(component.assign(value[r * rows:(r + 1) * rows]))
    return tf.group(assigns)

  def _serialize_to_tensors(self):
    return {"value": self.global_value()}

  def _restore_from_tensors(self, restored_tensors):
    return self.assign_global(restored_tensors["value"])


def per_replica_state(global_batch_size, sample_shape, variable_name, name,
                      setting="train.batch_size"):
  """A zero `PerReplicaState` of [global_batch_size / replicas, *sample_shape] per replica of the
  current strategy (one ON_READ variable, never aggregated on write). `setting` names the knob
  that sets `global_batch_size`, in errors."""
  errors.check(isinstance(global_batch_size, int) and global_batch_size >= 1,
               f"{name} needs the global batch size as an integer ({setting}); got "
               f"{global_batch_size!r}.")
  rows = per_replica_batch(tf.distribute.get_strategy(), global_batch_size)
  variable = tf.Variable(tf.zeros((rows,) + tuple(int(d) for d in sample_shape)),
                         trainable=False, name=variable_name,
                         synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  return PerReplicaState(variable, name, setting, global_batch_size)
