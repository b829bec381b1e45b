"""The callbacks of one training run (`train`), assembled from its knobs, in the order the engine
calls them after each call of the compiled step:

  StopRequest, [LeaseWatch], NanGuard, Checkpointer, [PeriodicEval], then on the chief:
  Summaries, SampleGrid, RunSummary, [Diagnostics], [Progress];
  with `train.max_seconds` a TimeBudget, after LeaseWatch with a lease and after NanGuard
  without one (its place in the list since it was introduced), before the Checkpointer.

The stop callbacks come first (a stop request is seen at the step it was made), the guard before
anything that saves or writes (nothing is written from a non-finite step), the time budget before
the Checkpointer (which saves at the end of training). Every worker runs the guard, the
Checkpointer and the best checkpoint's saves (a save may run collectives); only the chief writes
summaries, samples, eval results and diagnostics.
"""

import dataclasses
import os

import gin
import tensorflow as tf

from tfadvgan import config
from tfadvgan import data as data_lib
from tfadvgan import rng
from tfadvgan.metrics import diagnostics
from tfadvgan.training import best as best_lib
from tfadvgan.training import callbacks as callbacks_lib
from tfadvgan.training import stopping


@dataclasses.dataclass
class RunCallbacks:
  """The assembled callbacks (`callbacks`, in order) and those the run's exit handling reads."""
  callbacks: list
  guard: callbacks_lib.NanGuard
  checkpointer: callbacks_lib.Checkpointer
  periodic_eval: callbacks_lib.PeriodicEval = None
  grid: callbacks_lib.SampleGrid = None


def assemble(gan, state, run_dir, stops, source, *, eval_fn, fell_back, num_steps, batch_size,
             seed, log_every_steps, checkpoint_every_steps, sample_every_steps, eval_every_steps,
             best_metric, best_mode, diagnose_every_steps, diagnose_epsilon,
             diagnose_attack_success, verbose):
  """The run's callbacks (`RunCallbacks`).

  Args:
    gan: the GAN being trained.
    state: the engine's `engine.RunState`, shared with every callback.
    run_dir: the `run_dir.RunDir` (after `open_checkpoints`).
    stops: the run's `stopping.StopRequests` (its request and time-budget callbacks).
    source: the training data.
    eval_fn: this process's eval_fn (`run.train`), None when it does not evaluate.
    fell_back: the demo fell back to the ring.
    **knobs: `train`'s knobs of the same names.
  """
  guard = callbacks_lib.NanGuard(gan, state)
  checkpointer = callbacks_lib.Checkpointer(gan, run_dir.manager, checkpoint_every_steps, guard,
                                            temp_dir=run_dir.temp_dir, state=state)
  cbs = [guard, checkpointer]
  periodic_eval = _periodic_eval(gan, state, run_dir, eval_fn, fell_back, eval_every_steps,
                                 best_metric, best_mode)
  if periodic_eval is not None:
    cbs.append(periodic_eval)
  if run_dir.lease is not None:  # stop (writing nothing more) if another process took the lease
    cbs.insert(0, stopping.LeaseWatch(gan, run_dir.lease, state))
  grid = None
  if run_dir.chief:  # only the chief writes summaries, samples, eval results and diagnostics
    writer = tf.summary.create_file_writer(os.path.join(run_dir.path, "train"))
    grid = callbacks_lib.SampleGrid(gan, writer, sample_every_steps,
                                    os.path.join(run_dir.path, "samples"),
                                    seed=seed + rng.SAMPLE_GRID_OFFSET, guard=guard, state=state)
    cbs += [callbacks_lib.Summaries(gan, writer, log_every_steps, batch_size, state=state), grid,
            _run_summary(gan, writer, source, state)]
    if periodic_eval is not None:
      periodic_eval.writer = writer
    if diagnose_every_steps:
      cbs.append(_diagnostics(gan, writer, source, state, diagnose_every_steps, diagnose_epsilon,
                              diagnose_attack_success))
    if verbose:
      cbs.append(callbacks_lib.Progress(gan, log_every_steps, num_steps, state=state))
  if stops.budget is not None:
    cbs.insert(1, stops.budget)  # before the Checkpointer: it saves at the end of training
  cbs.insert(0, stops.request)
  return RunCallbacks(cbs, guard, checkpointer, periodic_eval, grid)


def _periodic_eval(gan, state, run_dir, eval_fn, fell_back, eval_every_steps, best_metric,
                   best_mode):
  """The PeriodicEval callback (None without evaluation): the chief evaluates; with a best
  metric, every worker takes part in the best checkpoint's saves."""
  chief = run_dir.chief
  evaluating = bool(eval_every_steps) and (eval_fn is not None or not (chief or fell_back))
  keeper = None
  if evaluating and best_metric is not None:  # every worker takes part in its saves
    with run_dir.strategy.scope():
      temp_dir = run_dir.temp_dir
      keeper = best_lib.BestCheckpoint(run_dir.manager.checkpoint, run_dir.path, best_metric,
                                       best_mode, temp_dir=temp_dir and temp_dir + "_best")
  if not (evaluating and (chief or keeper is not None)):
    return None
  return callbacks_lib.PeriodicEval(gan, None, eval_every_steps, eval_fn if chief else None,
                                    best=keeper, state=state)


def _run_summary(gan, writer, source, state):
  """The RunSummary callback: operative config, 64 real images (image data), non-default
  bindings."""
  first = next(iter(data_lib.make_eval_dataset(source, 64)))
  return callbacks_lib.RunSummary(gan, writer, gin.operative_config_str(), real=first["images"],
                                  hparams=config.non_default_bindings(), state=state)


def _diagnostics(gan, writer, source, state, every, epsilon, attack_success):
  """The Diagnostics callback on the first 64 evaluation examples (DAT's attack success too for
  a method whose attack is targeted, unless `attack_success` says otherwise)."""
  first = next(iter(data_lib.make_eval_dataset(source, 64)))
  if attack_success is None:
    attack_success = diagnostics.measures_attack_success(gan)
  return callbacks_lib.Diagnostics(
      gan, writer, every, first["images"], first.get("labels") if gan.conditional else None,
      epsilon=epsilon, attack_success=attack_success, state=state)
