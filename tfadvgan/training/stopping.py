"""How a training run ends: what stops it before train.num_steps (a stop request: Ctrl-C, SIGTERM,
another worker's request; the wall-time budget `train.max_seconds`; a lease taken over; a dead
peer; a non-finite loss), and `run_engine`, which runs the engine inside the stop-request context
and returns what the run reports (`cluster.StoppedEarly`, or None when it finished).

Every stop is a flag checked between the engine's calls (`gan.stop_training`, Keras's contract),
never an exception raised inside tracing, XLA compilation or tf.data: the Checkpointer then saves
at the end of training, and under multi-worker the engine sends the request to every worker so
that all stop after the same step (`engine.RunState.stop_requested_by_cluster`).
"""

import signal
import threading
import time

from absl import logging

from tfadvgan import errors
from tfadvgan.training import callbacks as callbacks_lib
from tfadvgan.training import cluster
from tfadvgan.training import engine as engine_lib


class TrainingDiverged(errors.ConfigError):
  """A non-finite loss stopped training."""


class TimeBudget(callbacks_lib.StepCallback):
  """Stops training once `max_seconds` of wall time have passed since `fit` began (for
  equal-wall-time comparisons). Checked after each step; the Checkpointer saves at the end."""

  def __init__(self, gan, max_seconds, state=None):
    super().__init__(gan, state)
    self.max_seconds = float(max_seconds)
    self.start = None
    self.stopped_at = None

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self.start = time.time()

  def on_train_batch_end(self, batch, logs=None):
    if time.time() - self.start >= self.max_seconds:
      self.stopped_at = self.step()
      self.model.stop_training = True


class StopRequest(callbacks_lib.StepCallback):
  """Stops training after the current step once `request()` was called (e.g. by a Ctrl-C handler).

  A flag checked between steps, instead of a KeyboardInterrupt raised wherever the main thread
  happens to be (inside tracing, XLA compilation or tf.data), which TF and Keras code may swallow.
  """

  def __init__(self, gan, state=None):
    super().__init__(gan, state)
    self.requested = False

  def request(self):
    self.requested = True

  def on_train_batch_end(self, batch, logs=None):
    if self.requested:
      self.model.stop_training = True


class LeaseWatch(callbacks_lib.StepCallback):
  """Raises the lease's ConfigError once its heartbeat thread found it taken over by another
  process (`lease.Lease.check`): this process then stops without saving anything more."""

  def __init__(self, gan, lease, state=None):
    super().__init__(gan, state)
    self.lease = lease

  def on_train_batch_end(self, batch, logs=None):
    self.lease.check()


class StopRequests:
  """The stop-request context of one run: `with StopRequests(gan, state, max_seconds) as stops:`
  around the engine's run.

  Inside it, the first Ctrl-C or SIGTERM (what preemptible VMs send) asks the run to stop after the
  current step (`request`, checkpointed by the Checkpointer at the end of training; under
  multi-worker every worker stops at the same step); a second Ctrl-C raises KeyboardInterrupt as
  usual. The handlers are installed from the main thread only, and the previous ones restored on
  exit. `budget` is the `TimeBudget` of `max_seconds` (None without one).

  Args:
    gan: the GAN being trained.
    state: the engine's `engine.RunState`.
    max_seconds: None, or the wall-time budget of this invocation.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, gan, state, max_seconds=None):
    self.state, self.max_seconds = state, max_seconds
    self.request = StopRequest(gan, state)
    self.budget = None if max_seconds is None else TimeBudget(gan, max_seconds, state)
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._on_signal)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
    return False

  def _on_signal(self, signum, frame):
    del frame
    self.request.request()
    signal.signal(signum, self._previous[signum])

  def requested(self):
    """Whether this process was asked to stop (the engine's `stop_requested`)."""
    return self.request.requested

  def budget_reached(self):
    return self.budget is not None and self.budget.stopped_at is not None

  def reason(self, diverged):
    """Why training stopped before num_steps: 'interrupted' (a request of this process, or one
    of the cluster's that was not this worker's time budget), 'max_seconds', or None (it finished,
    or `diverged`: a non-finite loss, which wins over any request)."""
    if diverged:
      return None
    if self.requested() or (self.state.stop_requested_by_cluster and not self.budget_reached()):
      return "interrupted"
    return "max_seconds" if self.budget_reached() else None


def run_engine(gan, run_dir, cbs, stops, dataset_fn, steps, reset_every=0):
  """`engine.fit` of `steps` train steps inside the stop-request context `stops`, then the exit
  handling. `cbs`: the run's `run_callbacks.RunCallbacks`; `run_dir`: its `run_dir.RunDir`.

  Returns:
    None when the run reached num_steps, else its `cluster.StoppedEarly`: a Ctrl-C that reached
    KeyboardInterrupt (the checkpoint saved, as for a stop request), or a dead peer (the survivor
    reports it; under one worker such an error is re-raised).
  """
  start, t0 = int(gan.global_step.numpy()), time.time()
  with stops:
    try:
      engine_lib.fit(gan, dataset_fn, steps, callbacks=cbs.callbacks,
                     stop_requested=stops.requested, reset_every=reset_every)
    except KeyboardInterrupt:
      return _interrupted(gan, run_dir, cbs.checkpointer)
    except cluster.PEER_ERRORS as e:  # a worker died: its peers' collectives fail
      if engine_lib.num_workers(run_dir.strategy) < 2:
        raise
      return cluster.report_unreachable_peer(e, run_dir.strategy, run_dir.path,
                                             int(gan.global_step.numpy()))
  return _finish(gan, run_dir, cbs, stops, start, t0)


def _interrupted(gan, run_dir, checkpointer):
  """Saves (unless the weights are not finite) and returns the `StoppedEarly` of a stop request."""
  path = checkpointer.save()
  step = int(gan.global_step.numpy())
  if run_dir.chief:
    logging.info(f"interrupted at step {step}; saved {path or 'nothing (weights not finite)'}."
                 " Run the same command to resume.")
  return cluster.StoppedEarly("interrupted", step, run_dir.latest_checkpoint())


def _finish(gan, run_dir, cbs, stops, start, t0):
  """The exit handling after the engine returned: a stop request (`_interrupted`), a divergence
  (TrainingDiverged), the time budget (a `StoppedEarly`) or the end; the chief logs the outcome.

  Returns:
    None (finished) or the run's `cluster.StoppedEarly`.
  """
  bad = cbs.guard.bad
  reason = stops.reason(diverged=bad is not None)
  if reason == "interrupted":
    return _interrupted(gan, run_dir, cbs.checkpointer)
  if bad is not None:
    step, key, value = bad
    raise TrainingDiverged(
        f"Training diverged: {key} = {value} at step {step}. The last good checkpoint "
        f"({run_dir.manager.latest_checkpoint or 'none'}) is kept. Lower the learning rates "
        "(make_optimizer.learning_rate), add a penalty or spectral norm, or change the seed.")
  stopped = None
  if reason == "max_seconds":
    stopped = cluster.StoppedEarly("max_seconds", stops.budget.stopped_at,
                                   run_dir.latest_checkpoint())
    if run_dir.chief:
      logging.info(f"wall-time budget train.max_seconds={stops.max_seconds} reached at step "
                   f"{stops.budget.stopped_at}; checkpoint saved. Run the same command to "
                   "continue.")
  if run_dir.chief:
    _log_done(gan, run_dir, cbs, start, t0)
  return stopped


def _log_done(gan, run_dir, cbs, start, t0):
  """The chief's end-of-run lines: steps and time, checkpoint, samples, eval, TensorBoard."""
  step = int(gan.global_step.numpy())
  logging.info("trained %d steps in %.1fs", step - start, time.time() - t0)
  grid, periodic_eval = cbs.grid, cbs.periodic_eval
  logging.info(f"done: step {step} in {run_dir.path}\n"
               f"  checkpoint   {run_dir.manager.latest_checkpoint}\n"
               + (f"  samples      {grid.last_path}\n" if grid is not None and grid.last_path
                  else "")
               + (periodic_eval.summary(run_dir.path) if periodic_eval is not None else "")
               + f"  tensorboard  tensorboard --logdir={run_dir.path}")
