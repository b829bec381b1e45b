"""The training engine: a `tf.function` loop over `strategy.run` of the GAN's per-replica step.

Keras 3's `fit` cannot drive MultiWorkerMirroredStrategy (keras-team/keras#20585; reproduced here:
dict batches fail with a PerReplica conversion error), so every run, one device included, goes
through this one loop (one path to test; docs/design.md, "The engine"):

  train_function(iterator, stop) -> (logs, stop_any)
    k = steps_per_execution times: batch = next(iterator); strategy.run(replica_step, batch)
    logs: each replica's window means (`keras.metrics.Mean` trackers), reduced across replicas
          with ReduceOp.MEAN: the plain mean over the global batch, identical on every worker;
          the trackers are reset inside the replica step of the first call after each crossing
          of a multiple of `reset_every` (from host context, reading or resetting these ON_READ
          variables would run a cross-worker collective on the chief alone, and hang);
    stop_any: the workers' stop flags summed across replicas (multi-worker only), so that a
          Ctrl-C, SIGTERM or time budget seen by one worker stops every worker at the same step.

`replica_step` is `GAN.train_step`. With XLA on one device or TPU it is wrapped whole in
`tf.function(jit_compile=True)`; under Mirrored / MultiWorker strategies the GAN compiles each
replica's computations between the gradient all-reduces and optimizer applies (`GAN.replica_compiled`). Callbacks are ordinary Keras callbacks, driven
through `keras.callbacks.CallbackList` from the host loop between calls.
"""

import dataclasses

import keras
import tensorflow as tf


def per_replica_xla(strategy):
  """Mirrored / MultiWorker: XLA compiles each replica's computations between the cross-replica
  reductions (`GAN.replica_compiled`), not the whole step, which XLA cannot compile there."""
  return isinstance(strategy, (tf.distribute.MirroredStrategy,
                               tf.distribute.MultiWorkerMirroredStrategy))


def num_workers(strategy):
  """Number of worker processes (hosts) taking part in `strategy` (1 unless multi-worker)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return max(1, sum(len(v) for k, v in spec.items() if k in ("chief", "worker")))
  return 1


def is_chief(strategy):
  """True on the process that writes summaries, samples and configs (TF's chief rule)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  resolver = strategy.cluster_resolver
  if resolver is None or resolver.task_type is None:
    return True
  spec = resolver.cluster_spec().as_dict()
  if "chief" in spec:
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and int(resolver.task_id) == 0


def task_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_type is None:
    return 0
  return int(resolver.task_id)


@dataclasses.dataclass
class RunState:
  """What the engine and a run's callbacks share while training, beside Keras's own
  `gan.stop_training` (the flag Keras callbacks such as EarlyStopping set on their model, which
  the engine honours). Owned by the `Engine` (`Engine.state`), reset by `Engine.begin`, and handed
  to the callbacks that read or set it (`callbacks.StepCallback(state=...)`); not kept on the GAN,
  so that nothing of a run's bookkeeping becomes a model attribute.

  Attributes:
    host_step: the global step as the host counts it inside `Engine.steps` (each call runs a known
      number of steps, so the count equals the device's without reading it); None outside, where
      the callbacks read the device.
    stop_now: set by the non-finite guard: under multi-worker, stop every worker after this call
      (all see the same reduced logs), without a round trip of the stop request.
    stop_requested_by_cluster: a stop request (this worker's or another's: Ctrl-C, SIGTERM, a time
      budget) reached every worker through the cross-worker sum and ended this run.
  """
  host_step: int = None
  stop_now: bool = False
  stop_requested_by_cluster: bool = False


class Engine:
  """Builds and runs the distributed train function of a compiled `GAN`.

  Args:
    gan: a compiled `tfadvgan.gans.GAN` (built under `strategy.scope()`).
    steps_per_execution: train steps per call of the compiled function (host loop amortised).
    jit_compile: XLA-compile each replica's step.
    run_eagerly: run the step eagerly (debugging).
  """

  def __init__(self, gan, steps_per_execution=1, jit_compile=False, run_eagerly=False):
    self.gan = gan
    self.strategy = gan.distribute_strategy
    self.steps_per_execution = int(steps_per_execution)
    self.jit_compile = bool(jit_compile) and not run_eagerly
    self.run_eagerly = bool(run_eagerly)
    self.sync_stop = num_workers(self.strategy) > 1
    step = gan.train_step
    gan.replica_jit = self.jit_compile and per_replica_xla(self.strategy)
    if self.jit_compile and not gan.replica_jit:  # one device, TPU: the whole step under XLA
      step = tf.function(step, jit_compile=True)
    # Not converted by autograph (as Keras does for its step): the step's Python control flow is
    # static, and a ConfigError raised while tracing then reaches the user as itself.
    self._replica_step = tf.autograph.experimental.do_not_convert(step)
    self._function = None
    self.stop_pending = False
    self.state = RunState()

  @tf.autograph.experimental.do_not_convert
  def _reset_then_step(self, batch, reset):
    def reset_trackers():
      for metric in self.gan.metrics:
        for variable in metric.variables:
          variable.assign(tf.zeros_like(variable))
      return tf.constant(True)
    tf.cond(reset, reset_trackers, lambda: tf.constant(False))
    return self._replica_step(batch)

  def _one_step(self, batch, reset):
    per_replica = self.strategy.run(self._reset_then_step, args=(batch, reset))
    return {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in per_replica.items()}

  def _train_function(self, iterator, steps, stop, reset):
    # The step is traced once, in the loop body (the trackers reset at the first iteration only).
    # Tracing a first step before the loop, as Keras does, would put two copies of the whole step
    # in the graph: twice the tracing, and on XLA twice the compile. The loop's initial logs are
    # zeros of the step's output structure, one float32 scalar per tracker (`GAN.train_step`).
    initial = {m.name: tf.zeros([], tf.float32) for m in self.gan.metrics}
    _, logs = tf.while_loop(
        lambda i, _: i < steps,
        lambda i, _: (i + 1, self._one_step(next(iterator), tf.logical_and(reset, tf.equal(i, 0)))),
        (tf.constant(0), initial))
    if self.sync_stop:
      def any_stop():  # float32: the CPU collectives reject an int32 scalar here
        return tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(stop, tf.float32))
      stop = tf.cast(self.strategy.experimental_local_results(self.strategy.run(any_stop))[0],
                     tf.int32)
    return logs, stop

  @property
  def train_function(self):
    """`train_function(iterator, steps, stop, reset) -> (logs, stop_any)`: `steps` (int32 scalar,
    1..steps_per_execution) train steps (the trackers first reset if `reset`), then the
    cluster-wide sum of the `stop` flags."""
    if self._function is None:
      if self.run_eagerly:
        self._function = self._train_function
      else:
        # No autograph anywhere (the loop is an explicit while_loop): a ConfigError raised while
        # tracing reaches the user as itself, not wrapped in a StagingError.
        self._function = tf.function(self._train_function, autograph=False)
    return self._function

  def distribute(self, dataset_or_fn):
    """A distributed dataset from a global-batch `tf.data.Dataset` or an InputContext function."""
    if callable(dataset_or_fn) and not isinstance(dataset_or_fn, tf.data.Dataset):
      return self.strategy.distribute_datasets_from_function(dataset_or_fn)
    return self.strategy.experimental_distribute_dataset(dataset_or_fn)

  def run(self, dataset, num_steps, callbacks=(), stop_requested=None, reset_every=0):
    """Runs `num_steps` train steps, `steps_per_execution` per call (the last call may run fewer).

    Args:
      dataset: a distributed dataset, a global-batch `tf.data.Dataset` or an InputContext fn.
      num_steps: train steps to run in this call.
      callbacks: Keras callbacks; any may set `gan.stop_training = True` (Keras's contract); the
        run's own callbacks share `self.state` with the engine.
      stop_requested: optional `() -> bool`, this process's stop request (Ctrl-C, SIGTERM).
      reset_every: reset the loss trackers after each crossing of a multiple of this many global
        steps (so each logged point averages one logging window); 0: never.

    Returns:
      The last logs, as Python floats.
    """
    if isinstance(dataset, tf.data.Dataset) or callable(dataset):
      dataset = self.distribute(dataset)
    iterator = iter(dataset)
    cbs = keras.callbacks.CallbackList(list(callbacks), model=self.gan)
    self.begin(cbs)
    logs = self.steps(iterator, cbs, num_steps, stop_requested, reset_every)
    cbs.on_train_end(logs)
    return logs

  def begin(self, cbs):
    """Clears the stop flags and the run state, then `cbs.on_train_begin()` (which may restore
    weights)."""
    self.gan.stop_training = False
    self.state.host_step = None
    self.state.stop_now = False
    self.state.stop_requested_by_cluster = False
    self.stop_pending = False
    cbs.on_train_begin()

  def steps(self, iterator, cbs, num_steps, stop_requested=None, reset_every=0,
            reset_first=False):
    """Runs `num_steps` train steps from `iterator` between `begin` and `on_train_end` (one
    `run`, or one epoch of `tfadvgan.fit`); `reset_first` resets the trackers first (the logs of
    an epoch are then its means). Returns the last logs, as Python floats."""
    gan = self.gan
    step = int(gan.global_step.numpy())  # then counted on the host: no device read per call
    try:
      return self._loop(gan, iterator, cbs, num_steps, stop_requested, reset_every, step,
                        reset_first)
    finally:
      self.state.host_step = None  # outside the loop the callbacks read the device again

  def _loop(self, gan, iterator, cbs, num_steps, stop_requested, reset_every, step, reset):
    """The host loop of `steps`; returns the last logs. `state.host_step` is the global step the
    callbacks see: each call runs `steps` train steps, each incrementing G's iterations once, so
    the host count equals the device's without reading it. The callbacks' batch index is that of
    the call's first step (begin) and last step (end) in this loop, as in Keras's `fit`."""
    logs = {}
    done = 0
    state = self.state
    request = self.stop_pending  # a worker's stop request not yet sent (multi-worker)
    state.host_step = step
    while done < num_steps:
      steps = min(self.steps_per_execution, num_steps - done)
      if stop_requested is not None and stop_requested():
        request = True
        if not self.sync_stop:  # one process: stop before running another step
          gan.stop_training = True
          break
      cbs.on_train_batch_begin(done)
      out, stop_any = self.train_function(iterator, tf.constant(steps, tf.int32),
                                          tf.constant(int(request), tf.int32),
                                          tf.constant(reset))
      logs = {k: float(v) for k, v in out.items()}
      done += steps
      reset = bool(reset_every) and (step + steps) // reset_every > step // reset_every
      step += steps
      state.host_step = step
      cbs.on_train_batch_end(done - 1, logs)
      if self.sync_stop:
        # A stop seen by this worker alone (Ctrl-C, SIGTERM, its time budget) is sent with the next
        # call, so that every worker stops after the same step; the non-finite guard sees the same
        # reduced logs on every worker and stops them all at once.
        if int(stop_any) > 0 or state.stop_now:
          state.stop_requested_by_cluster = int(stop_any) > 0
          gan.stop_training = True
          break
        if gan.stop_training:
          request, gan.stop_training = True, False
      elif gan.stop_training:
        break
    self.stop_pending = request
    return logs


def for_gan(gan):
  """The `Engine` of a GAN compiled by `GAN.compile` (cached on the GAN, so traced once)."""
  engine = getattr(gan, "_tfadvgan_engine", None)
  if engine is None:
    engine = Engine(gan, steps_per_execution=gan.steps_per_execution,
                    jit_compile=bool(gan.jit_compile), run_eagerly=bool(gan.run_eagerly))
    gan._tfadvgan_engine = engine  # pylint: disable=protected-access
  return engine


def fit(gan, dataset, steps, callbacks=(), stop_requested=None, reset_every=0):
  """Runs `steps` train steps of `gan` on `dataset` (global batches, or an InputContext fn).

  Returns:
    The logs of the last call: {name: float}, each the plain mean over the global batch since the
    trackers were last reset.
  """
  return for_gan(gan).run(dataset, steps, callbacks=callbacks, stop_requested=stop_requested,
                          reset_every=reset_every)
