"""Operating a run on a cluster: TF_CONFIG mistakes, the workers' config agreement, the run
directory's lease, the exit statuses, a dead peer, and an elastic restart (4 workers, then 2).

The multi-process cases start `scripts/train.py` workers on 127.0.0.1 (free ports, one CPU device
each; the helpers of tests/test_multi_worker.py), every child bounded in time and killed if it
hangs.
"""

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from helpers import (  # pylint: disable=g-bad-import-order
    ROOT, SMALL_FAST_ROBGAN, TINY, checkpoint_arrays, free_ports, latest_step, parse, read_log,
    small_npz, wait_all)
from test_multi_worker import _wait_until, setup  # noqa: F401  (setup: its data and config)
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.training import cluster
from tfadvgan.training import lease as lease_lib
from tfadvgan.training import run as loop

TRAIN = os.path.join(ROOT, "scripts", "train.py")
TWO = ["127.0.0.1:1", "127.0.0.1:2"]


# ------------------------------------------------------------------------------- TF_CONFIG

def _tf_config(cluster_spec=None, task=None, **extra):
  spec = dict(extra)
  if cluster_spec is not None:
    spec["cluster"] = cluster_spec
  if task is not None:
    spec["task"] = task
  return json.dumps(spec)


TF_CONFIG_MISTAKES = [
    (None, r"^--strategy=multi_worker needs TF_CONFIG, which is not set; on one machine use "
           r"--strategy=default \(one device\) or --strategy=mirrored"),
    ('{"cluster": {"worker": ["127.0.0.1:1"', r"^TF_CONFIG is not valid JSON \("),
    (_tf_config(task={"type": "worker", "index": 0}), r'^TF_CONFIG has no "cluster"'),
    (_tf_config({"worker": TWO}), r'^TF_CONFIG has no "task"'),
    (_tf_config({"worker": TWO}, {"type": "worker", "index": 5}),
     r"^TF_CONFIG's task index 5 is out of range: its cluster has 2 'worker' task\(s\), "
     r"indices 0-1"),
    (_tf_config({"worker": TWO}, {"type": "worker", "index": 2}),  # the first index past the end
     r"^TF_CONFIG's task index 2 is out of range"),
    (_tf_config({"worker": TWO}, {"type": "worker", "index": -1}),
     r"^TF_CONFIG's task index -1 is out of range"),
    (_tf_config({"worker": TWO}, {"type": "chief", "index": 0}),
     r"^TF_CONFIG's task type 'chief' is not a job of its cluster \(worker\)"),
    (_tf_config({"worker": TWO, "ps": ["127.0.0.1:3"]}, {"type": "worker", "index": 0}),
     r"^TF_CONFIG's cluster has a 'ps' job"),
    (_tf_config({"worker": ["127.0.0.1:1"]}, {"type": "worker", "index": 0}),
     r"^TF_CONFIG describes a cluster of one worker; --strategy=multi_worker needs two or more; "
     r"on one machine use --strategy=default .* or --strategy=mirrored"),
]


@pytest.mark.parametrize("text,line", TF_CONFIG_MISTAKES)
def test_each_tf_config_mistake_gives_its_line(text, line):
  env = {} if text is None else {"TF_CONFIG": text}
  with pytest.raises(errors.ConfigError) as info:
    distribute.check_tf_config(env)
  message = str(info.value)
  assert "\n" not in message and re.search(line, message), message


def test_a_valid_tf_config_passes():
  for task in ({"type": "worker", "index": 1}, {"type": "chief", "index": 0}):
    distribute.check_tf_config({"TF_CONFIG": _tf_config(
        {"chief": ["127.0.0.1:1"], "worker": TWO}, task)})


def test_multi_worker_without_tf_config_is_one_line_exit_2_and_writes_nothing(tmp_path):
  model_dir = tmp_path / "run"
  env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_CPP_MIN_LOG_LEVEL")}
  proc = subprocess.run(
      [sys.executable, TRAIN, f"--gin_file={ROOT}/gin_configs/demo.gin",
       f"--model_dir={model_dir}", "--strategy=multi_worker"],
      env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [
      "error: --strategy=multi_worker needs TF_CONFIG, which is not set; on one machine use "
      "--strategy=default (one device) or --strategy=mirrored (all local GPUs, else CPUs)."]
  assert not model_dir.exists()


# ------------------------------------------------------------------------------- the lease

@pytest.fixture(params=["local", "ram"])
def run_dir(request, tmp_path):
  """A run directory on the local disk, and one on TF's in-memory filesystem (gfile only)."""
  if request.param == "local":
    yield str(tmp_path / "run")
    return
  path = f"ram://lease_test_{os.getpid()}_{time.time_ns()}/run"
  yield path
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)


def _write_holder(run_dir, host, pid, heartbeat_age, token="theirs"):
  """Writes a lease as another process would (write a temp file, rename it over the lease)."""
  now = time.time()
  storage.atomic_write(os.path.join(run_dir, "lease"), json.dumps(
      {"host": host, "pid": pid, "start": now - heartbeat_age - 5,
       "heartbeat": now - heartbeat_age, "token": token}))


def _holder(run_dir):
  with tf.io.gfile.GFile(os.path.join(run_dir, "lease")) as f:
    return json.loads(f.read())


def test_lease_is_held_refused_to_a_second_writer_and_released(run_dir):
  first = lease_lib.Lease(run_dir, settle_seconds=0)
  first.acquire()
  try:
    held = _holder(run_dir)
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert held["token"] == first.token and abs(held["heartbeat"] - time.time()) < 30
    second = lease_lib.Lease(run_dir, settle_seconds=0)
    with pytest.raises(errors.ConfigError) as info:
      second.acquire()
    message = str(info.value)
    assert "\n" not in message
    assert (f"{run_dir} is in use by another training process: host {socket.gethostname()} pid "
            f"{os.getpid()} (heartbeat 0 s ago)") in message, message
    assert _holder(run_dir)["token"] == first.token  # the refusal wrote nothing
  finally:
    first.release()
  assert not tf.io.gfile.exists(os.path.join(run_dir, "lease"))
  second = lease_lib.Lease(run_dir, settle_seconds=0)
  second.acquire()  # a clean stop released it: no wait
  second.release()


def test_a_stale_lease_is_taken_over_with_a_warning_and_a_fresh_one_is_not(run_dir, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  _write_holder(run_dir, "other-host.invalid", 4242, heartbeat_age=100)
  with pytest.raises(errors.ConfigError, match=r"host other-host.invalid pid 4242 \(heartbeat "
                                               r"100 s ago\)"):
    lease_lib.Lease(run_dir, stale_seconds=300, settle_seconds=0).acquire()
  _write_holder(run_dir, "other-host.invalid", 4242, heartbeat_age=400)
  taker = lease_lib.Lease(run_dir, stale_seconds=300, settle_seconds=0)
  taker.acquire()
  try:
    assert _holder(run_dir)["token"] == taker.token
    err = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert ("taking over the lease on " + run_dir + " from host other-host.invalid "
            "pid 4242 (heartbeat 7 min ago)") in err, err
  finally:
    taker.release()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(run_dir):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  _write_holder(run_dir, socket.gethostname(), dead.pid, heartbeat_age=1)
  taker = lease_lib.Lease(run_dir, settle_seconds=0)
  taker.acquire()
  taker.release()
  # A live process on this host (this test's parent) with a fresh heartbeat is not.
  _write_holder(run_dir, socket.gethostname(), os.getppid(), heartbeat_age=1)
  with pytest.raises(errors.ConfigError, match=f"pid {os.getppid()} "):
    lease_lib.Lease(run_dir, settle_seconds=0).acquire()


def test_the_heartbeat_refreshes_and_a_lost_lease_stops_the_holder(run_dir):
  lease = lease_lib.Lease(run_dir, heartbeat_seconds=0.2, stale_seconds=1, settle_seconds=0)
  lease.acquire()
  try:
    first = _holder(run_dir)["heartbeat"]
    time.sleep(1.0)
    assert _holder(run_dir)["heartbeat"] > first + 0.3  # refreshed by the thread, not the loop
    lease.check()
    _write_holder(run_dir, "other-host.invalid", 99, heartbeat_age=0)  # a takeover elsewhere
    time.sleep(0.6)
    with pytest.raises(errors.ConfigError, match="taken over by host other-host.invalid pid 99"):
      lease.check()
  finally:
    lease.release()
  assert _holder(run_dir)["host"] == "other-host.invalid"  # not removed: not ours any more


def test_two_writers_starting_together_one_refuses(run_dir):
  """Both read "free" and write; the one whose token is not read back after settling refuses."""
  first = lease_lib.Lease(run_dir, settle_seconds=1.0)
  failure = []

  def acquire():
    try:
      first.acquire()
    except errors.ConfigError as e:
      failure.append(str(e))
  thread = threading.Thread(target=acquire)
  thread.start()
  time.sleep(0.3)  # `first` has written and is settling; a second writer overwrites it
  _write_holder(run_dir, "other-host.invalid", 7, heartbeat_age=0)
  thread.join()
  first.release()
  assert failure and "started at the same time: host other-host.invalid pid 7" in failure[0]
  assert _holder(run_dir)["host"] == "other-host.invalid"


def test_lease_knobs_are_checked():
  with pytest.raises(errors.ConfigError, match=r"lease.stale_seconds must be > 30"):
    lease_lib.Lease("/tmp/x", stale_seconds=10)


# ------------------------------------------------------------------------ train(): lease, outcome

def _tiny(tmp_path, extra=()):
  parse(["gin_configs/base/dcgan_fmnist.gin"],
        TINY + ["dataset.source = 'npz'", f"dataset.path = '{small_npz(tmp_path)}'"]
        + list(extra))


def test_train_holds_the_lease_while_training_and_refuses_a_held_run_dir(tmp_path):
  model_dir = str(tmp_path / "run")
  seen = []

  def eval_fn(gan, step):
    del gan
    seen.append((step, _holder(model_dir)["pid"]))
    return {}
  _tiny(tmp_path, ["train.num_steps = 2"])
  gan = loop.train(model_dir, eval_fn=eval_fn, eval_every_steps=1)
  assert gan.stopped_early is None
  assert seen == [(1, os.getpid()), (2, os.getpid())]
  assert "lease" not in os.listdir(model_dir)  # released at the end
  # Another live process holds it: refused, one line, nothing written.
  _write_holder(model_dir, socket.gethostname(), os.getppid(), heartbeat_age=3)
  before = sorted(os.listdir(model_dir)), latest_step(model_dir)
  _tiny(tmp_path, ["train.num_steps = 4"])
  with pytest.raises(errors.ConfigError, match=rf"in use by another training process: host "
                                               rf"\S+ pid {os.getppid()} \(heartbeat [3-9] s ago"):
    loop.train(model_dir)
  assert (sorted(os.listdir(model_dir)), latest_step(model_dir)) == before
  assert _holder(model_dir)["pid"] == os.getppid()
  # Readers (eval, sample, diagnose, eval.py --continuous) need no lease.
  _, _, path = loop.restore_run(model_dir)
  assert path.endswith("ckpt-2")


def test_a_study_step_with_a_time_budget_accepts_the_rerun_status():
  # pylint: disable=protected-access
  from tfadvgan.cli import study  # pylint: disable=g-import-not-at-top
  budget = ["--gin_param=train.max_seconds = 900"]
  train = study._script("train") + ["--model_dir=/x"]
  assert study._other_success(train + budget) == (75,)
  assert study._other_success(train) == ()
  assert study._other_success(study._script("eval") + budget) == ()


def test_a_refused_lease_in_a_new_dir_creates_nothing_and_an_error_removes_the_new_dir(tmp_path):
  model_dir = str(tmp_path / "fresh")
  _tiny(tmp_path, ["build_gan.method = 'no_such_method'"])
  with pytest.raises(errors.ConfigError, match="no_such_method"):
    loop.train(model_dir)
  assert not os.path.exists(model_dir)  # the lease's directory is removed with the lease


def test_train_reports_how_it_stopped(tmp_path):
  _tiny(tmp_path, ["train.num_steps = 50", "train.max_seconds = 1e-6"])
  gan = loop.train(str(tmp_path / "run"))
  assert gan.stopped_early == cluster.StoppedEarly(
      "max_seconds", 1, str(tmp_path / "run" / "checkpoints" / "ckpt-1"), 75)
  _tiny(tmp_path, ["train.num_steps = 2"])
  assert loop.train(str(tmp_path / "run2")).stopped_early is None
  _tiny(tmp_path, ["train.num_steps = 2"])
  assert loop.train(str(tmp_path / "run2")).stopped_early is None  # already at num_steps


# --------------------------------------------------------------------- the config agreement

def test_config_digest_covers_every_binding_and_the_run_dir(tmp_path):
  _tiny(tmp_path)
  base = cluster.config_digest("/runs/a")
  assert cluster.config_digest("/runs/a/") == base
  assert cluster.config_digest("/runs/b") != base
  _tiny(tmp_path, ["make_optimizer.learning_rate = 0.00021"])
  assert cluster.config_digest("/runs/a") != base
  _tiny(tmp_path, ["train.verbose = 0"])  # in TINY already: the same bindings, the same digest
  assert cluster.config_digest("/runs/a") == base


def test_mismatch_message_names_the_workers_that_differ():
  assert cluster.mismatch_message(["a", "a", "a"]) is None
  assert cluster.mismatch_message(["a", "b", "a"]).startswith(
      "worker 1 was started with another gin config or --model_dir than worker 0;")
  assert cluster.mismatch_message(["a", "a", "c", "b"]).startswith("workers 2, 3 were started")


# What a surviving worker 1 of 3 got when worker 2 was SIGKILLed (TF 2.21, 2026-12-06).
SURVIVOR_ERROR = (
    "Collective ops is aborted by: Collective ops is aborted by: recvmsg:Connection reset by "
    "peer\nAdditional GRPC error information from remote target /job:worker/replica:0/task:2 "
    "while calling /tensorflow.WorkerService/RecvBuf:\n:UNKNOWN:Error received from peer\n"
    "Additional GRPC error information from remote target /job:worker/replica:0/task:0 while "
    "calling /tensorflow.WorkerService/RecvBuf:")


# What the other survivor (worker 1 of 3) got in another run: only the chief that relayed the abort.
RELAYED_ERROR = (
    "Collective ops is aborted by: Collective ops is aborted by: Cancelled\nAdditional GRPC error "
    "information from remote target /job:worker/replica:0/task:0 while calling "
    "/tensorflow.WorkerService/RecvBuf:")


class _Resolver:
  def __init__(self, task_type, task_id, spec=None):
    self.task_type, self.task_id, self.spec = task_type, task_id, spec

  def cluster_spec(self):
    if self.spec is None:
      raise ValueError("no cluster")
    return tf.train.ClusterSpec(self.spec)


class _Strategy:
  def __init__(self, task_type, task_id, spec=None):
    self.cluster_resolver = _Resolver(task_type, task_id, spec)


def test_the_unreachable_peer_is_named_from_the_collective_error():
  assert cluster.unreachable_peer(SURVIVOR_ERROR, _Strategy("worker", 1)) == "worker 2"
  assert cluster.unreachable_peer(SURVIVOR_ERROR, _Strategy("worker", 2)) == "worker 0"
  assert cluster.unreachable_peer("deadline exceeded", _Strategy("worker", 0)) == "a peer"
  assert cluster.unreachable_peer("/job:chief/replica:0/task:0 reset",
                                  _Strategy("worker", 0)) == "chief"


def test_the_unreachable_peer_is_the_one_whose_port_does_not_answer():
  """A relayed abort names the chief; the probe of every other task's port names the dead one."""
  spec = {"worker": ["127.0.0.1:1000", "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"]}
  asked = []

  def alive(dead):
    def probe(address):
      asked.append(address)
      return address not in dead
    return probe

  me = _Strategy("worker", 1, spec)
  assert cluster.unreachable_peer(RELAYED_ERROR, me) != "worker 2"  # what the error alone says
  assert cluster.unreachable_peer(RELAYED_ERROR, me, alive({"127.0.0.1:1002"})) == "worker 2"
  assert sorted(asked) == ["127.0.0.1:1000", "127.0.0.1:1002", "127.0.0.1:1003"]  # not itself
  assert cluster.unreachable_peer(RELAYED_ERROR, me, alive({"127.0.0.1:1003", "127.0.0.1:1000"})
                                  ) == "workers 0, 3"
  assert cluster.unreachable_peer(RELAYED_ERROR, me, alive(set())) == "worker 0"  # all answer
  chief = _Strategy("worker", 0, {"chief": ["127.0.0.1:999"], "worker": ["127.0.0.1:1000"]})
  assert cluster.unreachable_peer("", chief, alive({"127.0.0.1:999"})) == "chief"


def test_the_port_probe_tells_a_listening_port_from_a_closed_one():
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert cluster._answers(f"127.0.0.1:{port}")  # pylint: disable=protected-access
  assert not cluster._answers(f"127.0.0.1:{port}")  # pylint: disable=protected-access
  assert not cluster._answers("no-such-host.invalid:80")  # pylint: disable=protected-access


def test_a_survivor_stays_reachable_after_naming_the_peer(tmp_path, monkeypatch):
  """The report is logged first, then the survivor lingers (its port still open) before it
  returns, so that a survivor that gets the abort later does not find this one gone and name it
  too (the slow 3-worker test below saw that race once)."""
  events = []
  monkeypatch.setattr(cluster.time, "sleep", lambda seconds: events.append(("sleep", seconds)))
  monkeypatch.setattr(cluster.logging, "error", lambda line: events.append(("log", line)))
  stopped = cluster.report_unreachable_peer(SURVIVOR_ERROR, _Strategy("worker", 1),
                                            str(tmp_path), 7)
  assert events == [("log", "worker 2 is unreachable; restart all workers: the run starts over "
                            "(no checkpoint yet)."), ("sleep", cluster.LINGER_SECONDS)]
  assert cluster.LINGER_SECONDS >= 3 * cluster.PROBE_SECONDS
  assert (stopped.reason, stopped.step, stopped.checkpoint) == ("unreachable_peer", 7, None)


# ------------------------------------------------------------------------- multi-process

# test_multi_worker.py's `setup`: a 256-image npz and a small synchronized-BN DCGAN (SGD). Here
# logged at every step, never sampled, checkpointed every 3 steps, with a global batch of 12 (3 and
# 4 workers).
CLUSTER = ["train.log_every_steps = 1", "train.sample_every_steps = 100000",
           "train.checkpoint_every_steps = 3", "train.batch_size = 12"]


@pytest.fixture(scope="module")
def cluster_config(setup):
  return setup[1]


def start_workers(config, model_dir, n, params=(), log_prefix=None, per_worker=None):
  """Starts `n` workers (`n` = 1: a single process, no TF_CONFIG); returns their Popen objects.
  `per_worker[i]`: extra gin params of worker i. Logs: `log_prefix`.w{i}.log."""
  ports = free_ports(n)
  procs = []
  for i in range(n):
    env = {k: v for k, v in os.environ.items()  # the CLI's own quiet start-up, as a user gets
           if k not in ("TF_CONFIG", "TF_CPP_MIN_LOG_LEVEL")}
    args = [f"--gin_param={p}"
            for p in CLUSTER + list(params) + list((per_worker or {}).get(i, ()))]
    if n > 1:
      env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                     "task": {"type": "worker", "index": i}})
      args.append("--strategy=multi_worker")
    with open(f"{log_prefix or model_dir}.w{i}.log", "w") as log:
      procs.append(subprocess.Popen(
          [sys.executable, TRAIN, f"--gin_file={config}", f"--model_dir={model_dir}"] + args,
          env=env, stdout=log, stderr=subprocess.STDOUT))
  return procs


def _logged_steps(log_prefix):
  return [int(s) for s in re.findall(r"^step +(\d+)/", read_log(log_prefix, 0), re.M)]


def test_workers_with_different_configs_all_refuse_and_write_nothing(cluster_config, tmp_path):
  model_dir = str(tmp_path / "run")
  procs = start_workers(cluster_config, model_dir, 2, ["train.num_steps = 4"],
                        per_worker={1: ["make_optimizer.learning_rate = 0.021"]})
  codes = wait_all(procs, timeout=180)
  line = ("error: worker 1 was started with another gin config or --model_dir than worker 0; "
          "start every worker with the same --gin_file, --gin_param, --strategy and --model_dir.")
  for i in range(2):
    assert read_log(model_dir, i).strip().splitlines() == [line], read_log(model_dir, i)[-2000:]
  assert codes == [2, 2]
  assert not os.path.exists(model_dir)


@pytest.mark.slow  # ~40 s
def test_a_second_process_into_a_run_dir_refuses_and_the_first_is_unharmed(cluster_config,
                                                                            tmp_path):
  model_dir = str(tmp_path / "run")
  first = start_workers(cluster_config, model_dir, 1, ["train.num_steps = 100000"])
  try:
    _wait_until(lambda: len(_logged_steps(model_dir)) >= 2, model_dir, first, "a logged step")
    second = start_workers(cluster_config, model_dir, 1, ["train.num_steps = 100000"],
                           log_prefix=model_dir + "_second")
    assert wait_all(second, timeout=120) == [2]
    lines = read_log(model_dir + "_second", 0).strip().splitlines()
    assert len(lines) == 1 and re.match(
        rf"error: {model_dir} is in use by another training process: host \S+ pid "
        rf"{first[0].pid} \(heartbeat \d+ s ago\)\.", lines[0]), lines
    reached = max(_logged_steps(model_dir))
    _wait_until(lambda: max(_logged_steps(model_dir)) >= reached + 3, model_dir, first,
                "more steps")
    first[0].send_signal(signal.SIGTERM)
    assert wait_all(first, timeout=120) == [75]  # stopped early with a checkpoint: rerun
  finally:
    for p in first:
      if p.poll() is None:
        p.kill()
  log = read_log(model_dir, 0)
  step = latest_step(model_dir)
  assert f"interrupted at step {step}; saved {model_dir}/checkpoints/ckpt-{step}" in log
  assert "Traceback" not in log and "error" not in log
  assert "lease" not in os.listdir(model_dir)


def _signal_the_last_worker(config, model_dir, n, signum):
  """Starts `n` workers, sends `signum` to the last once a checkpoint >= 6 exists, and waits for
  the others. Returns (their exit statuses, seconds from the signal to their exit, the newest
  checkpoint's step, the one line each survivor's log must be, apart from progress lines)."""
  procs = start_workers(config, model_dir, n, ["train.num_steps = 100000"])
  try:
    _wait_until(lambda: (latest_step(model_dir) or 0) >= 6, model_dir, procs,
                "a checkpoint >= 6")
    procs[-1].send_signal(signum)
    sent = time.time()
    codes = wait_all(procs[:-1], timeout=120)
    elapsed = time.time() - sent
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  saved = latest_step(model_dir)
  for i in range(n - 1):
    log = read_log(model_dir, i)
    assert [l for l in log.splitlines() if not l.startswith("step ")] == [
        f"[tfadvgan] worker {n - 1} is unreachable; restart all workers: the run resumes from "
        f"ckpt-{saved}."], log[-3000:]
  return codes, elapsed, saved


@pytest.mark.slow  # ~2-3 min on 2 cores
def test_a_killed_worker_stops_the_others_with_one_line_then_all_resume(cluster_config,
                                                                        tmp_path):
  model_dir = str(tmp_path / "run")
  codes, elapsed, saved = _signal_the_last_worker(cluster_config, model_dir, 3, signal.SIGKILL)
  assert codes == [75, 75] and elapsed < 60
  assert max(_logged_steps(model_dir)) - saved <= 3  # at most one checkpoint interval lost
  # The lease of the chief (alive, stopped cleanly) is released: the restart does not wait.
  assert "lease" not in os.listdir(model_dir)
  codes = wait_all(start_workers(cluster_config, model_dir, 3, [f"train.num_steps = {saved + 3}"],
                                 log_prefix=model_dir + "_restart"))
  chief = read_log(model_dir + "_restart", 0)
  assert codes == [0, 0, 0], chief[-3000:]
  assert f"resumed from {model_dir}/checkpoints/ckpt-{saved} at step {saved}" in chief
  assert latest_step(model_dir) == saved + 3


FAST_ROBGAN = SMALL_FAST_ROBGAN + """FastRobGAN.batch_size = 12  # train.batch_size (CLUSTER)
FastRobGAN.epsilon = 0.05
make_optimizer.name = 'sgd'
make_optimizer.learning_rate = 0.02
make_optimizer.decay_steps = 1000
train.diagnose_every_steps = 0
"""


@pytest.mark.slow  # ~3 min on 2 cores
def test_a_run_of_4_workers_resumes_on_2_with_fast_robgans_delta(cluster_config, tmp_path):
  """4 workers train 3 steps; 2 workers resume to step 6. A one-process reference restores the
  same ckpt-3 (one device: the delta as one global tensor) and trains steps 4-6 on the 2 shards
  (`input_shards = 2`): its ckpt-6, delta included, equals the 2-worker run's."""
  config = str(tmp_path / "fast_robgan.gin")
  data = os.path.join(os.path.dirname(cluster_config), "data.npz")
  with open(config, "w") as f:
    f.write(FAST_ROBGAN.format(root=ROOT, data=data))
  model_dir = str(tmp_path / "run")
  codes = wait_all(start_workers(config, model_dir, 4, ["train.num_steps = 3"]), timeout=400)
  assert codes == [0] * 4, read_log(model_dir, 0)[-3000:]
  reference = str(tmp_path / "reference")
  shutil.copytree(model_dir, reference)
  for name in ("operative_config.gin", "config.gin"):  # the reference differs in input_shards
    os.remove(os.path.join(reference, name))
  codes = wait_all(start_workers(config, model_dir, 2, ["train.num_steps = 6"],
                                 log_prefix=model_dir + "_resume"))
  chief = read_log(model_dir + "_resume", 0)
  assert codes == [0, 0], chief[-3000:]
  assert f"resumed from {model_dir}/checkpoints/ckpt-3 at step 3" in chief
  parse([config], CLUSTER + ["train.num_steps = 6", "make_train_dataset.input_shards = 2",
                             "train.verbose = 0"])
  loop.train(reference)
  got = checkpoint_arrays(os.path.join(model_dir, "checkpoints", "ckpt-6"))
  want = checkpoint_arrays(os.path.join(reference, "checkpoints", "ckpt-6"))
  deltas = [k for k in want if k.startswith("state/") and want[k].shape == (12, 32, 32, 1)]
  assert deltas and set(got) == set(want)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)


# TF's stderr on the survivor of a SIGSTOPped peer (2 workers, TF 2.21, 2026-12-06), abridged; the
# first and fifth lines are what the filter must keep.
PEER_ABORT_STDERR = """\
W1206 06:10:00.000000 1 some_file.py:1] an unrelated warning
E0000 00:00:1796537000.1 31 base_collective_executor.cc:252] BaseCollectiveExecutor::StartAbort \
UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):
/job:worker/replica:0/task:1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events.
[tfadvgan] worker 1 is unreachable; restart all workers: the run resumes from ckpt-21.
E0000 00:00:1796537000.2 31 ring_alg.cc:291] Aborting RingReduce with UNAVAILABLE: recvmsg:Connec\
tion reset by peer
Additional GRPC error information from remote target /job:worker/replica:0/task:2 while calling
:UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"recvmsg:Connection reset by peer"}
Traceback (most recent call last):
"""


def test_the_peer_abort_filter_drops_tfs_abort_lines_and_nothing_else():
  code = ("import os, sys\nfrom tfadvgan.cli import common\nwith common.PeerAbortFilter():\n"
          "  os.write(2, sys.stdin.buffer.read())\nos.write(2, b'after\\n')\n")
  proc = subprocess.run([sys.executable, "-c", code], input=PEER_ABORT_STDERR, text=True,
                        capture_output=True, timeout=120, cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
  lines = PEER_ABORT_STDERR.splitlines()
  assert proc.stderr.splitlines()[-4:] == [lines[0], lines[4], lines[8], "after"], proc.stderr


@pytest.mark.slow  # ~1.5 min on 2 cores
def test_a_hung_worker_stops_the_others_with_one_line(cluster_config, tmp_path):
  """SIGSTOP (a frozen VM, a partition without resets): TF's coordination service stops getting
  the worker's heartbeats and aborts the survivor's collectives (about 10 s, measured)."""
  model_dir = str(tmp_path / "run")
  codes, elapsed, _ = _signal_the_last_worker(cluster_config, model_dir, 2, signal.SIGSTOP)
  assert codes == [75] and elapsed < 90
