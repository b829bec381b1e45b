"""The run directory's lease: one writer at a time in a `--model_dir`.

The process that writes a run (the chief, or the single process) holds `RUN/lease`, a small JSON
file: {"host", "pid", "start", "heartbeat", "token"} (times in seconds since the epoch). A daemon
thread rewrites it every `heartbeat_seconds`, so a lease stays fresh through a long XLA compile,
checkpoint save or eval, when the training loop itself does not come back for minutes.

A second writer refuses with one line naming the holder and the age of its heartbeat, unless
  - the heartbeat is older than `stale_seconds` (its holder crashed or lost its host), or
  - the holder ran on this host and its pid is gone (a crash, a SIGKILL: restart at once),
in which cases it takes the lease over with one warning. A clean stop (finished, Ctrl-C, SIGTERM,
a time budget, a dead peer, an error) removes the file, so a restart never waits.

Every access goes through tf.io.gfile (local disks, gs://, ram://). Acquiring is check, write,
wait `settle_seconds`, read back: two writers that start together both write, and the one whose
token is not read back refuses. What remains of the race on an object store is in
docs/operations.md, "Cluster operation".
"""

import json
import os
import socket
import threading
import time
import uuid

import gin
import tensorflow as tf
from absl import logging

from tfadvgan import errors
from tfadvgan import storage

LEASE_FILE = "lease"


def _pid_alive(pid):
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError, TypeError, OverflowError):
    return True
  return True


def _age(seconds):
  seconds = max(0.0, seconds)
  return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@gin.configurable("lease", denylist=["model_dir"])
class Lease:
  """The lease on `model_dir` (see the module docstring).

  Args:
    model_dir: the run directory.
    stale_seconds: a lease whose heartbeat is older than this is taken over (its holder is taken
      to be dead). Must exceed `heartbeat_seconds` by a margin for slow filesystems and clock
      skew between hosts.
    heartbeat_seconds: how often the holder rewrites its heartbeat.
    settle_seconds: wait between writing the lease and reading it back when acquiring.
  """

  def __init__(self, model_dir, stale_seconds=300.0, heartbeat_seconds=30.0, settle_seconds=0.5):
    self.heartbeat_seconds = errors.check_float("lease.heartbeat_seconds", heartbeat_seconds,
                                                low=0, low_inclusive=False)
    self.stale_seconds = errors.check_float(
        "lease.stale_seconds", stale_seconds, low=self.heartbeat_seconds, low_inclusive=False,
        hint="(it must exceed lease.heartbeat_seconds)")
    self.settle_seconds = errors.check_float("lease.settle_seconds", settle_seconds, low=0)
    self.model_dir = model_dir
    self.path = storage.join(model_dir, LEASE_FILE)
    self.token = uuid.uuid4().hex
    self.host = socket.gethostname()
    self.start = None
    self.lost = None  # set by the heartbeat thread: why this process no longer holds the lease
    self._created_dir = False
    self._stop = threading.Event()
    self._thread = None

  def holder(self):
    """The lease file's content (a dict), {} if it is unreadable, None if there is none."""
    try:
      value = json.loads(storage.read(self.path))
    except (FileNotFoundError, tf.errors.NotFoundError):
      return None
    except (ValueError, OSError, tf.errors.OpError):
      return {}
    return value if isinstance(value, dict) else {}

  def describe(self, holder):
    return (f"host {holder.get('host', '?')} pid {holder.get('pid', '?')} (heartbeat "
            f"{_age(time.time() - float(holder.get('heartbeat', 0)))} ago)")

  def refusal(self):
    """None if the lease can be taken (free, stale, or its holder is dead); else the one-line
    reason it cannot. Reads only."""
    holder = self.holder()
    if not holder:
      return None
    age = time.time() - float(holder.get("heartbeat", 0) or 0)
    dead = holder.get("host") == self.host and not _pid_alive(holder.get("pid"))
    if age > self.stale_seconds or dead:
      return None
    return (f"{self.model_dir} is in use by another training process: {self.describe(holder)}. "
            f"Wait for it to finish or stop it; if it is dead, its lease is taken over once its "
            f"heartbeat is older than lease.stale_seconds={self.stale_seconds:g}, or use another "
            "--model_dir.")

  def _record(self):
    now = time.time()
    return json.dumps({"host": self.host, "pid": os.getpid(), "start": self.start,
                       "heartbeat": now, "token": self.token}, indent=2)

  def acquire(self):
    """Takes the lease (warning once if it takes over a stale or dead holder's) and starts the
    heartbeat; raises ConfigError if another live process holds it."""
    problem = self.refusal()
    errors.check(problem is None, problem)
    previous = self.holder()
    if previous:
      logging.warning(f"taking over the lease on {self.model_dir} from "
                      f"{self.describe(previous)}: its holder is gone.")
    self._created_dir = not storage.exists(self.model_dir)
    self.start = time.time()
    storage.atomic_write(self.path, self._record())
    time.sleep(self.settle_seconds)
    winner = self.holder()
    if not winner or winner.get("token") != self.token:
      self._created_dir = False
      raise errors.ConfigError(
          f"{self.model_dir} is in use by another training process that started at the same "
          f"time: {self.describe(winner or {})}. Use another --model_dir, or stop it first.")
    self._thread = threading.Thread(target=self._beat, name="tfadvgan-lease", daemon=True)
    self._thread.start()

  def _beat(self):
    while not self._stop.wait(self.heartbeat_seconds):
      try:
        holder = self.holder()
        if holder is not None and holder and holder.get("token") != self.token:
          self.lost = (f"the lease on {self.model_dir} was taken over by "
                       f"{self.describe(holder)} (this process's heartbeat was older than "
                       "lease.stale_seconds); stopping without writing more.")
          return
        storage.atomic_write(self.path, self._record())
      except (errors.ConfigError, OSError, tf.errors.OpError) as e:  # keep trying: transient
        logging.warning(f"could not refresh {self.path}: {e}")

  def check(self):
    """Raises ConfigError if the heartbeat thread found the lease taken over by another process."""
    errors.check(self.lost is None, self.lost or "")

  def release(self):
    """Stops the heartbeat and removes the lease if this process still holds it (and the run
    directory, if acquiring created it and nothing else was written there)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    holder = self.holder()
    try:
      if holder and holder.get("token") == self.token:
        storage.remove(self.path)
      if self._created_dir and storage.isdir(self.model_dir) and not storage.listdir(self.model_dir):
        storage.rmtree(self.model_dir)
    except (OSError, tf.errors.OpError) as e:
      logging.warning(f"could not remove {self.path}: {e}")
