"""How a run starts and ends on a cluster: the start-up agreement of the workers (same config,
the chief's lease), a dead peer, and the outcome a caller (the CLI: its exit status) inspects.

Exit statuses of scripts/train.py (README, "Running on a pod / cluster"):
  0            finished: the run is at train.num_steps;
  EXIT_RERUN   stopped early with a checkpoint, rerun the same command to continue (SIGTERM,
               Ctrl-C, preemption, train.max_seconds, a dead peer): `gan.stopped_early` is set;
  2            bad input (ConfigError), a second writer, workers with different configs, and a
               diverged run (TrainingDiverged is a ConfigError).
"""

import concurrent.futures
import dataclasses
import hashlib
import re
import socket
import time

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.training import engine as engine_lib
from tfadvgan.training import lease as lease_lib

EXIT_RERUN = 75  # sysexits EX_TEMPFAIL: "try again later"

# What a surviving worker's next collective raises when a peer is gone: a reset connection
# (UnavailableError), `make_strategy.collective_timeout_seconds` (DeadlineExceededError), or the
# abort that TensorFlow then propagates to the other collectives (Cancelled / Aborted).
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.CancelledError, tf.errors.AbortedError)


@dataclasses.dataclass
class StoppedEarly:
  """Why `run.train` returned before train.num_steps (set as `gan.stopped_early`; None when the
  run finished).

  Attributes:
    reason: 'interrupted' (Ctrl-C, SIGTERM, a stop on another worker), 'max_seconds' or
      'unreachable_peer'.
    step: the global step this process reached.
    checkpoint: the run's newest checkpoint (where a rerun resumes), or None.
  """
  reason: str
  step: int
  checkpoint: str = None
  exit_status: int = EXIT_RERUN


# ----------------------------------------------------------------------- start-up agreement

def config_digest(model_dir):
  """sha256 of what every worker must share: the gin bindings in force (`gin.config_str()`: every
  file and --gin_param, including --strategy and --mixed_precision) and the run directory."""
  text = gin.config_str() + "\nmodel_dir = " + str(model_dir).rstrip("/")
  return hashlib.sha256(text.encode()).hexdigest()


def _words(digest):
  """The first 64 bits of a hex digest as four 16-bit integers (exact in float32)."""
  return [int(digest[i:i + 4], 16) for i in range(0, 16, 4)]


def gather_rows(strategy, row):
  """[workers, len(row)] float32: `row` of every worker, in task order (one all-gather)."""
  value = tf.constant([row], tf.float32)

  @tf.function  # eagerly, MultiWorkerMirroredStrategy.run warns of its overhead
  def gather():
    return strategy.gather(strategy.run(lambda: tf.identity(value)), axis=0)
  gathered = gather().numpy()
  per_worker = gathered.shape[0] // engine_lib.num_workers(strategy)
  return gathered[::per_worker]


def mismatch_message(digests):
  """One line naming the workers whose config differs from worker 0's (None if all agree)."""
  differ = [i for i, d in enumerate(digests) if d != digests[0]]
  if not differ:
    return None
  names = ("worker " if len(differ) == 1 else "workers ") + ", ".join(map(str, differ))
  return (f"{names} {'was' if len(differ) == 1 else 'were'} started with another gin config or "
          "--model_dir than worker 0; start every worker with the same --gin_file, --gin_param, "
          "--strategy and --model_dir.")


def start(strategy, model_dir, chief):
  """Before anything is written: the workers agree (one all-gather of each worker's config digest
  and the chief's lease check), then the chief takes the run directory's lease.

  Returns:
    The chief's acquired `lease.Lease` (None on the other workers).

  Raises:
    ConfigError (on every worker): the configs differ, or another process holds the lease.
  """
  lease = lease_lib.Lease(model_dir)
  refused = lease.refusal() if chief else None
  if engine_lib.num_workers(strategy) > 1:
    rows = gather_rows(strategy, _words(config_digest(model_dir)) + [float(refused is not None)])
    message = mismatch_message([tuple(r[:4]) for r in rows.astype(np.int64).tolist()])
    errors.check(message is None, message)
    if rows[:, 4].max() > 0 and refused is None:  # a worker: name the holder the chief saw
      refused = lease.refusal() or f"{model_dir} is in use by another training process."
  errors.check(refused is None, refused)
  if not chief:
    return None
  lease.acquire()
  return lease


# ----------------------------------------------------------------------- a dead peer

PROBE_SECONDS = 2.0  # how long a survivor waits for each peer's gRPC port to answer
# How long a survivor stays up (its port answering) after it has named the peer: a survivor that
# gets the abort later (relayed; about 4 s later in one 3-worker run) probes this one's port, and
# must not find it closed and name it too. Every survivor's exit is delayed by this much.
LINGER_SECONDS = 10.0


def unreachable_peer(error, strategy, alive=None):
  """'worker 2' (or 'chief', or 'workers 0, 2'): the peer(s) that are gone, else 'a peer'.

  With 3 or more workers, a survivor's collective error may name only the peer that relayed the
  abort (the chief, which saw the dead worker first), not the dead one. So the survivor asks
  every other task's gRPC port (the cluster spec's addresses, in parallel, `PROBE_SECONDS`): the
  tasks that do not answer are the ones named. When every peer answers (or the cluster spec is
  unknown) the first other task the error names is, else 'a peer'. `alive(address) -> bool`
  replaces the TCP probe (tests).
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  me = (getattr(resolver, "task_type", None), engine_lib.task_id(strategy))
  gone = [task for task, up in _probe_peers(resolver, me, alive or _answers) if not up]
  if gone:
    return _task_names(gone)
  for job, task in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", str(error)):
    if (job, int(task)) != me:
      return _task_names([(job, int(task))])
  return "a peer"


def _task_names(tasks):
  """[('worker', 0), ('worker', 2)] -> 'workers 0, 2'; [('chief', 0)] -> 'chief'."""
  names = []
  for job in sorted({job for job, _ in tasks}):
    ids = sorted(i for j, i in tasks if j == job)
    if job == "chief":
      names.append("chief")
    else:
      names.append(f"{job}{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}")
  return " and ".join(names)


def _probe_peers(resolver, me, alive):
  """[((job, index), answered)] for every other task of the cluster spec ([] if unknown)."""
  try:
    spec = resolver.cluster_spec().as_dict()
  except Exception:  # pylint: disable=broad-except  # no resolver, or not a cluster
    return []
  tasks = []
  for job, addresses in spec.items():
    if isinstance(addresses, dict):  # sparse cluster specs map index -> address
      addresses = [addresses[i] for i in sorted(addresses)]
    tasks += [((job, i), address) for i, address in enumerate(addresses) if (job, i) != me]
  if not tasks:
    return []
  with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(tasks), 32)) as pool:
    answers = list(pool.map(lambda item: alive(item[1]), tasks))
  return [(task, up) for (task, _), up in zip(tasks, answers)]


def _answers(address):
  """Whether a TCP connection to `host:port` opens within PROBE_SECONDS."""
  host, _, port = address.rpartition(":")
  try:
    with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
      return True
  except (OSError, ValueError):
    return False


def latest_checkpoint(model_dir):
  """The chief's newest checkpoint path in `model_dir` (read by any worker), or None."""
  try:
    return tf.train.latest_checkpoint(storage.join(model_dir, "checkpoints"))
  except (tf.errors.OpError, OSError):
    return None


def report_unreachable_peer(error, strategy, model_dir, step):
  """Logs the one line a surviving worker ends with (as an error), stays reachable for
  `LINGER_SECONDS`, and returns its `StoppedEarly`."""
  checkpoint = latest_checkpoint(model_dir)
  resume = (f"the run resumes from {storage.basename(checkpoint)}" if checkpoint
            else "the run starts over (no checkpoint yet)")
  peer = unreachable_peer(error, strategy)
  verb = "are" if peer.startswith("workers") or " and " in peer else "is"
  logging.error(f"{peer} {verb} unreachable; restart all workers: "
                f"{resume}.")
  time.sleep(LINGER_SECONDS)
  return StoppedEarly("unreachable_peer", step, checkpoint)
