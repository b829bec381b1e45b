"""The best checkpoint by an eval metric, kept outside the rotation in `checkpoints/best/`.

When training evaluates (`train.eval_every_steps`), `train.keep_checkpoints` may rotate away the
checkpoint with the best FID. `BestCheckpoint` keeps that one in `checkpoints/best/` (one
checkpoint, a standard `checkpoint` state file, so `tf.train.latest_checkpoint` finds it), writes
`checkpoints/best/best.json` (metric, direction, value, step) and one record in
`eval/results.json` (`"best": true`). Scripts read it with `--step=best`
(`checkpoints.resolve_checkpoint`).

How, also under multi-worker (where a save may run collectives, so every worker must take part in
every save, and only the chief evaluates): at each evaluation step every worker first saves a
candidate (the chief into `checkpoints/best/candidate/`, the others into a temporary directory
deleted at once), exactly when the rotation's saves happen, decided by the config alone. Then the
chief evaluates the same weights; if they beat the best so far, it copies the candidate's files
into `checkpoints/best/` (file copies, no collective), points the state file at them and deletes
the previous best. The other workers never wait for that decision: they go on to the next step,
whose all-reduce waits for the chief only as long as its evaluation takes.
"""

import math
import re

from absl import logging
from google.protobuf import text_format
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.metrics import evaluation
from tfadvgan.training import checkpoints

BEST_FILE = "best.json"
CANDIDATE_DIR = "candidate"
MODES = ("auto", "min", "max")
# Lower is better for distances; higher for scores and for the manifold metrics.
_LOWER = ("fid", "kid")
_HIGHER = ("is", "precision", "recall", "density", "coverage")
# A base name stands for the one classifier-tagged key of that metric (metric_names).
_PATTERNS = {"fid": r"fid(_.+)?", "kid": r"kid(_.+)?", "is": r"is(_.+)?_mean"}


def result_key(name, keys):
  """The key of `keys` that the metric `name` stands for, or None.

  `name` itself if present; else, for a base metric, its one classifier-tagged key: 'fid' ->
  'fid' or 'fid_<classifier>', 'is' -> 'is_mean' or 'is_<classifier>_mean', 'kid' -> 'kid' or
  'kid_<classifier>' (never a `*_std`).
  """
  keys = list(keys)
  if name in keys:
    return name
  pattern = _PATTERNS.get(name)
  if pattern is None:
    return None
  found = [k for k in keys if re.fullmatch(pattern, k) and not k.endswith("_std")]
  errors.check(len(found) <= 1, f"train.best_metric = {name!r} is ambiguous among the eval "
               f"results {sorted(found)}: set it to one of them.")
  return found[0] if found else None


def check_metric(metric, mode, names):
  """At start-up: the in-training eval's result keys `names` must hold `train.best_metric`, and its
  direction must be known (`direction`)."""
  key = result_key(metric, names)
  errors.check(key is not None,
               f"train.best_metric = {metric!r} is not among the in-training eval results "
               f"({', '.join(names)}): set train.best_metric to one of them, or None to keep no "
               "best checkpoint.")
  direction(key, mode)


def direction(key, mode="auto"):
  """'min' or 'max': how `key` improves. 'auto' knows FID/KID (min), IS and precision, recall,
  density, coverage (max); another metric needs `train.best_mode`."""
  errors.check(mode in MODES, f"train.best_mode must be one of {', '.join(MODES)}; got {mode!r}.")
  if mode != "auto":
    return mode
  base = key.split("_")[0]
  if base in _LOWER:
    return "min"
  if base in _HIGHER:
    return "max"
  raise errors.ConfigError(
      f"train.best_mode = 'auto' does not know whether {key!r} is better low or high: set "
      "train.best_mode = 'min' or 'max'.")


def better(value, best, mode):
  """Whether `value` beats `best` (None: nothing yet) in direction `mode`; NaN never does."""
  if value is None or not math.isfinite(value):
    return False
  return best is None or (value < best if mode == "min" else value > best)


class BestCheckpoint:
  """Keeps the best checkpoint by `metric`; see the module docstring.

  Args:
    checkpoint: the run's `tf.train.Checkpoint` (`checkpoints.make_checkpoint`).
    model_dir: the run directory.
    metric: an eval result name, or a base name ('fid', 'is', 'kid', see `result_key`).
    mode: 'auto', 'min' or 'max' (`direction`).
    temp_dir: None on the chief; another worker's scratch directory for its candidate saves.
  """

  def __init__(self, checkpoint, model_dir, metric="fid", mode="auto", temp_dir=None):
    errors.check(isinstance(metric, str) and metric, f"train.best_metric must be a metric name "
                 f"(e.g. 'fid') or None; got {metric!r}.")
    errors.check(mode in MODES, f"train.best_mode must be one of {', '.join(MODES)}; got "
                 f"{mode!r}.")
    self.model_dir, self.metric, self.mode = model_dir, metric, mode
    self.directory = checkpoints.best_dir(model_dir)
    self.temp_dir = temp_dir
    self.candidates = checkpoints.Manager(
        checkpoint, temp_dir or storage.join(self.directory, CANDIDATE_DIR), max_to_keep=1)
    self.key = None  # the result key `metric` stands for, found at the first evaluation
    self.warned = False
    self.best = self._saved() if temp_dir is None else None

  def _saved(self):
    """best.json of an earlier invocation of this run (same metric and mode), else None."""
    saved = storage.read_optional_json(storage.join(self.directory, BEST_FILE), expect=dict)
    if saved is None:
      return None
    if (saved.get("metric_setting"), saved.get("mode_setting")) != (self.metric, self.mode):
      logging.warning("%s was kept by %s (%s); train.best_metric = %r, train.best_mode = %r "
                      "now: the next evaluation replaces it.", self.directory,
                      saved.get("metric"), saved.get("mode"), self.metric, self.mode)
      return None
    return saved


  def save_candidate(self, step):
    """Every worker, at every evaluation step, before the chief evaluates."""
    self.candidates.save(checkpoint_number=step)
    if self.temp_dir is not None:
      storage.rmtree(self.temp_dir)

  def update(self, step, results, record=None):
    """The chief, after evaluating the candidate of `step`: promotes it if it is the best.

    Args:
      step: the evaluated step (the latest candidate's).
      results: {metric: value} of that evaluation.
      record: further fields of the results.json record (classifier, n, ...).

    Returns:
      The best checkpoint's path if this one became it, else None.
    """
    if self.key is None:
      self.key = result_key(self.metric, results)
      if self.key is None:
        if not self.warned:
          logging.warning("No best checkpoint kept: the evaluation returned no %r (it returned "
                          "%s); set train.best_metric.", self.metric, sorted(results))
          self.warned = True
        return None
    mode = direction(self.key, self.mode)
    value = float(results[self.key])
    if not better(value, self.best and self.best["value"], mode):
      return None
    path = self._promote(step)
    self.best = dict(metric=self.key, mode=mode, value=value, step=int(step),
                     checkpoint=f"{checkpoints.BEST_DIR}/{storage.basename(path)}",
                     metric_setting=self.metric, mode_setting=self.mode)
    storage.atomic_write_json(storage.join(self.directory, BEST_FILE), self.best)
    evaluation.set_best_record(self.model_dir, dict(
        step=int(step), metric=self.key, value=value, best=True, mode=mode,
        checkpoint=self.best["checkpoint"], **(record or {})))
    return path

  def _promote(self, step):
    """Copies the candidate of `step` into the best directory; then deletes the older best."""
    source = self.candidates.latest_checkpoint
    errors.check(source is not None and source.endswith(f"ckpt-{step}"),
                 f"No candidate checkpoint of step {step} in {self.candidates.directory}.")
    name = storage.basename(source)
    old = tf.train.latest_checkpoint(self.directory)
    for path in storage.glob(source + ".*"):
      storage.copy(path, storage.join(self.directory, name + path[len(source):]), overwrite=True)
    # The `checkpoint` state file, as a CheckpointManager writes it (relative paths), atomically
    # (tf.compat.v1.train.update_checkpoint_state would log a deprecation warning).
    state = tf.compat.v1.train.generate_checkpoint_state_proto(
        self.directory, name, all_model_checkpoint_paths=[name])
    storage.atomic_write(storage.join(self.directory, "checkpoint"), text_format.MessageToString(state))
    if old is not None and storage.basename(old) != name:
      for path in storage.glob(old + ".*"):
        storage.remove(path)
    return storage.join(self.directory, name)
