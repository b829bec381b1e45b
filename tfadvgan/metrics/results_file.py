"""``<model_dir>/eval/results.json``: the evaluation records of a run (a list of ``{step, metric,
value, classifier, n, checkpoint, reference_split, n_reference}``, plus the best checkpoint's
record), written under a file lock, and the TensorBoard scalars ``eval/<metric>``."""
import contextlib
import json
import math
import os

import tensorflow as tf

from tfadvgan import storage

RESULTS_DIR = "eval"
RESULTS_FILE = "results.json"


def results_path(model_dir):
  return storage.join(model_dir, RESULTS_DIR, RESULTS_FILE)


def read_results(model_dir):
  """The records of ``<model_dir>/eval/results.json`` ([] if there is none)."""
  return storage.read_optional_json(results_path(model_dir), default=[], expect=list)


@contextlib.contextmanager
def _locked(directory):
  """An exclusive lock (flock on ``.results.lock``) so concurrent writers do not lose records.

  Only on local filesystems: object stores (gs://) have no file locks, so there concurrent
  evaluations of one run (e.g. eval --continuous beside a second eval) may drop each other's
  records; run one writer per run directory there.
  """
  storage.makedirs(directory)
  local = storage.local_path(directory)
  try:
    import fcntl  # pylint: disable=g-import-not-at-top
  except ImportError:  # Not POSIX: no locking.
    fcntl = None
  if fcntl is None or local is None:
    yield
    return
  with open(os.path.join(local, ".results.lock"), "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _json_value(value):
  value = float(value)
  return value if math.isfinite(value) else None


def append_results(model_dir, step, results, classifier_name, n, checkpoint=None, extra=None,
                   summaries=True):
  """Adds ``results`` of ``step`` to ``<model_dir>/eval/results.json`` and TensorBoard.

  Read-modify-write under a file lock, written to a temp file and renamed. A record with the same
  step, metric, classifier, n and ``extra`` fields replaces the older one. Non-finite values are
  stored as ``null``.

  Args:
    model_dir: the run directory.
    step: train step of the evaluated weights.
    results: ``{metric: value}`` from ``evaluate``.
    classifier_name: ``Classifier.name``.
    n: number of generated samples.
    checkpoint: checkpoint basename (e.g. 'ckpt-2'), or None (live weights during training).
    extra: further JSON fields of every record (e.g. reference_split, n_reference).
    summaries: also write scalars ``eval/<metric>`` to ``<model_dir>/eval`` (TensorBoard).

  Returns:
    The path of results.json.
  """
  directory = storage.join(model_dir, RESULTS_DIR)
  new = [dict(step=int(step), metric=name, value=_json_value(value), classifier=classifier_name,
              n=int(n), checkpoint=checkpoint, **(extra or {}))
         for name, value in results.items()]

  def identity(record):
    return json.dumps({k: v for k, v in record.items() if k not in ("value", "checkpoint")},
                      sort_keys=True)

  with _locked(directory):
    replaced = {identity(r) for r in new}
    records = [r for r in read_results(model_dir) if identity(r) not in replaced] + new
    storage.atomic_write(results_path(model_dir), json.dumps(records, indent=1))
  if summaries:
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default(step=int(step)):
      for name, value in results.items():
        tf.summary.scalar(f"{RESULTS_DIR}/{name}", float(value))
    writer.flush()
    writer.close()
  return results_path(model_dir)


def evaluated_steps(model_dir, classifier_name, n, names, extra=None):
  """Steps whose records already hold every metric in ``names`` for this classifier, n, extra."""
  extra = extra or {}
  seen = {}
  for r in read_results(model_dir):
    if (r.get("classifier") == classifier_name and r.get("n") == n
        and all(r.get(k) == v for k, v in extra.items())):
      seen.setdefault(r.get("step"), set()).add(r.get("metric"))
  return sorted(s for s, m in seen.items() if set(names) <= m)


def set_best_record(model_dir, record):
  """Puts ``record`` (``"best": true``, a metric, its value, step and checkpoint) into
  results.json in place of the earlier best record of the same metric (``training.best``)."""
  directory = storage.join(model_dir, RESULTS_DIR)
  with _locked(directory):
    records = [r for r in read_results(model_dir)
               if not (r.get("best") and r.get("metric") == record["metric"])]
    storage.atomic_write(results_path(model_dir), json.dumps(records + [record], indent=1))
  return results_path(model_dir)
