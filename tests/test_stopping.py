"""How a run stops (`tfadvgan.training.stopping`) and the run state the engine shares with the
callbacks (`engine.RunState`): the signal handlers, the stop reason, the guard's stop-all flag.
Pure host logic, no training (the end-to-end paths: test_training's SIGINT test, test_cluster's
max_seconds test, test_multi_worker's SIGTERM tests)."""

import math
import os
import signal
import threading
import types

import pytest

from tfadvgan.training import callbacks as callbacks_lib
from tfadvgan.training import engine as engine_lib
from tfadvgan.training import stopping


@pytest.mark.parametrize("requested, by_cluster, budget_at, diverged, want", [
    (False, False, None, False, None),  # finished
    (True, False, None, False, "interrupted"),  # this process's Ctrl-C / SIGTERM
    (False, True, None, False, "interrupted"),  # another worker's request
    (False, True, 7, False, "max_seconds"),  # this worker's own budget, sent to the cluster
    (False, False, 7, False, "max_seconds"),
    (True, False, 7, False, "interrupted"),  # a request wins over the budget
    (True, True, 7, True, None),  # a non-finite loss wins over everything
])
def test_the_stop_reason(requested, by_cluster, budget_at, diverged, want):
  state = engine_lib.RunState(stop_requested_by_cluster=by_cluster)
  stops = stopping.StopRequests(None, state, max_seconds=None if budget_at is None else 60)
  if requested:
    stops.request.request()
  if budget_at is not None:
    stops.budget.stopped_at = budget_at
  assert stops.reason(diverged) == want


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers are installed from the main thread only")
def test_a_first_sigterm_requests_a_stop_and_gives_the_next_one_back():
  before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  stops = stopping.StopRequests(None, engine_lib.RunState())
  with stops:
    assert not stops.requested()
    os.kill(os.getpid(), signal.SIGTERM)
    assert stops.requested()
    assert signal.getsignal(signal.SIGTERM) is before[signal.SIGTERM]  # a second one acts as usual
    assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
  assert {s: signal.getsignal(s) for s in before} == before


def test_callbacks_read_the_step_and_stop_every_worker_through_the_run_state():
  """The step comes from the engine's host count (no GAN to read here), and a non-finite value
  sets Keras's stop flag and the run state's stop-every-worker flag."""
  state = engine_lib.RunState(host_step=13)
  model = types.SimpleNamespace(stop_training=False)
  guard = callbacks_lib.NanGuard(None, state)
  guard.set_model(model)
  guard.on_train_batch_end(0, {"d_loss": 0.25, "g_loss": 1.5})
  assert guard.bad is None and not state.stop_now and not model.stop_training
  guard.on_train_batch_end(1, {"d_loss": 0.25, "g_loss": -math.inf})
  assert guard.bad == (13, "g_loss", -math.inf)
  assert state.stop_now and model.stop_training
