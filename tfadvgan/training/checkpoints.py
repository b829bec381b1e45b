"""Checkpoints (tf.train.CheckpointManager) and the saved operative gin config.

A run directory holds `checkpoints/ckpt-N.*` (the rotation: the newest `train.keep_checkpoints`),
`checkpoints/best/` (the best one by an eval metric, outside the rotation: `training.best`),
`operative_config.gin` (the gin values in force, defaults included) and `config.gin` (the bindings
as given). Resuming with a different operative
config fails loudly, except for the bindings in `RESUMABLE` (how long to train, how often to log),
which a user may change to extend a run.
"""

import re

import gin
import tensorflow as tf
from absl import logging

from tfadvgan import errors
from tfadvgan import storage

RESUMABLE = frozenset({
    "train.num_steps", "train.log_every_steps", "train.checkpoint_every_steps",
    "train.sample_every_steps", "train.eval_every_steps", "train.keep_checkpoints",
    "train.verbose", "train.diagnose_every_steps", "train.best_metric", "train.best_mode",
})
# Evaluation settings do not change the training either.
RESUMABLE_PREFIXES = ("make_eval_fn.",)
OPERATIVE_FILE = "operative_config.gin"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"  # below CHECKPOINT_DIR


def _resumable(key):
  return key in RESUMABLE or key.startswith(RESUMABLE_PREFIXES)


def parse_bindings(config_text):
  """'scope/name.param = value' lines (continuations joined) -> {key: normalised value}."""
  bindings, key = {}, None
  for raw in config_text.splitlines():
    line = raw.rstrip()
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    match = re.match(r"^([A-Za-z_][\w./]*)\s*=\s*(.*)$", line)
    if match and not raw.startswith((" ", "\t")):
      key = match.group(1)
      bindings[key] = match.group(2).strip()
    elif key is not None:
      bindings[key] += " " + line.strip()
  return {k: re.sub(r"\s+", " ", v).replace("[ ", "[").replace(" ]", "]")
          for k, v in bindings.items()}


def check_and_save_config(model_dir, resuming):
  """Saves the operative config, after checking it against the one already in `model_dir`.

  The check runs whenever `model_dir` holds an operative_config.gin, not only when a checkpoint
  was restored: a run that stopped before its first checkpoint (e.g. diverged) still has its
  config, samples and events there, and a different config must not be mixed in.

  Args:
    model_dir: the run directory.
    resuming: whether a checkpoint was restored (only changes the advice of the error).
  """
  path = storage.join(model_dir, OPERATIVE_FILE)
  current = gin.operative_config_str()
  if storage.exists(path):
    saved = storage.read(path)
    old, new = parse_bindings(saved), parse_bindings(current)
    diffs = sorted(k for k in set(old) | set(new)
                   if not _resumable(k) and old.get(k) != new.get(k))
    if diffs:
      lines = "\n".join(f"  {k}: saved {old.get(k, '<unset>')} -> now {new.get(k, '<unset>')}"
                        for k in diffs[:20])
      fresh = "" if resuming else (
          f" It holds no checkpoint, so you may also delete {model_dir} and start over.")
      raise errors.ConfigError(
          f"{model_dir} holds a run trained with a different config:\n{lines}\n"
          "Use a new --model_dir, or pass the same gin files and params as the saved run "
          f"({path}).{fresh}")
  storage.atomic_write(path, current)
  storage.atomic_write(storage.join(model_dir, "config.gin"), gin.config_str())


def make_checkpoint(gan):
  """A checkpoint of explicit variable lists, in each model's `weights` order.

  Not `tf.train.Checkpoint(gan=gan)`: with Keras 3, layers kept in Python lists are invisible to
  TF's object-graph tracking, so BN moving statistics (and any layer in a list) were silently
  left out; trainable weights only survived through the optimizers. Lists of variables are
  tracked by position, which covers every weight, trainable or not.
  """
  parts = dict(generator=list(gan.generator.weights),
               discriminator=list(gan.discriminator.weights),
               d_optimizer=list(gan.d_optimizer.variables),
               g_optimizer=list(gan.g_optimizer.variables),
               state=list(gan.state_variables()))
  if gan.generator_ema is not None:
    parts["generator_ema"] = list(gan.generator_ema.weights)
  return tf.train.Checkpoint(**parts)


CORRUPT_SUFFIX = ".corrupt"


def _first_line(error):
  text = str(error).strip()
  return (text.splitlines()[0] if text else type(error).__name__)[:300]


class Manager(tf.train.CheckpointManager):
  """`tf.train.CheckpointManager` with clear save errors and the bookkeeping of corrupt files.

  - `save` turns a failed write (full disk, no permission, read-only filesystem) into one
    ConfigError naming the checkpoint directory, after removing the half-written checkpoint
    (`ckpt-N_temp/`, `ckpt-N.*` not yet recorded in the `checkpoint` file).
  - `forget(path)` (called by `restore` when it falls back from an unreadable checkpoint) drops a
    checkpoint from the manager's list, so `latest_checkpoint` is the one restored and the next
    save rewrites the `checkpoint` file without it; that save first renames the unreadable
    checkpoint's files to `*.corrupt` (kept for inspection, never read again). Nothing is changed
    on disk before a save, so restoring for eval or sampling leaves the run directory untouched.

  Relies on two attributes of TF's implementation (`_maybe_delete`, `_latest_checkpoint`; TF
  2.21), covered by tests/test_checkpoint_errors.py.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.forgotten = []

  # pylint: disable=protected-access
  def forget(self, path):
    self._maybe_delete.pop(path, None)
    if self._latest_checkpoint == path:
      remaining = list(self._maybe_delete)
      self._latest_checkpoint = remaining[-1] if remaining else None
    self.forgotten.append(path)
  # pylint: enable=protected-access

  def _move_forgotten_aside(self):
    for path in self.forgotten:
      for name in storage.glob(path + ".*"):
        if not name.endswith(CORRUPT_SUFFIX):
          storage.rename(name, name + CORRUPT_SUFFIX, overwrite=True)
    self.forgotten = []

  def _remove_partial(self, number):
    prefix = f"{self._prefix}-{number}"  # pylint: disable=protected-access
    recorded = set(self._maybe_delete)  # pylint: disable=protected-access
    for name in storage.glob(prefix + "_temp*"):
      _quietly(storage.rmtree if storage.isdir(name) else storage.remove, name)
    if prefix not in recorded:
      for name in storage.glob(prefix + ".*"):
        if not name.endswith(CORRUPT_SUFFIX):
          _quietly(storage.remove, name)

  def save(self, checkpoint_number=None, check_interval=True, options=None):
    try:
      self._move_forgotten_aside()
      return super().save(checkpoint_number=checkpoint_number, check_interval=check_interval,
                          options=options)
    except (tf.errors.OpError, OSError, errors.ConfigError) as e:
      if checkpoint_number is not None:
        self._remove_partial(int(checkpoint_number))
      if isinstance(e, errors.ConfigError):
        raise
      raise storage.write_error(self.directory, e, "save a checkpoint in") from None


def _quietly(fn, *args):
  try:
    fn(*args)
  except (tf.errors.OpError, OSError):
    pass


def make_manager(gan, model_dir, max_to_keep=5):
  ckpt = make_checkpoint(gan)
  return Manager(ckpt, storage.join(model_dir, "checkpoints"), max_to_keep=max_to_keep)


def _restore_one(manager, path):
  status = manager.checkpoint.restore(path)
  status.assert_existing_objects_matched()


def restore(manager, checkpoint_path=None):
  """Restores the latest (or the given) checkpoint; returns its path, or None if there is none.

  Without `checkpoint_path`, an unreadable latest checkpoint (truncated, corrupt, missing files)
  is skipped with one warning that names it, and the newest readable one is restored instead
  (see `Manager.forget` for what happens to the unreadable one). If none is readable, or the
  given one is not, one ConfigError.
  """
  if checkpoint_path is not None:
    candidates = [checkpoint_path]
  else:
    candidates = list(reversed(manager.checkpoints))
    if manager.latest_checkpoint and manager.latest_checkpoint not in candidates:
      candidates.insert(0, manager.latest_checkpoint)
  if not candidates:
    return None
  failed = []
  for path in candidates:
    try:
      _restore_one(manager, path)
    except Exception as e:  # pylint: disable=broad-except  (any failure here means unreadable)
      failed.append((path, _first_line(e)))
      continue
    if failed:
      names = ", ".join(storage.basename(p) for p, _ in failed)
      plural = "s" if len(failed) > 1 else ""
      logging.warning(f"checkpoint{plural} {names} in {manager.directory} "
                      f"{'are' if plural else 'is'} unreadable ({failed[0][1]}); using "
                      f"{storage.basename(path)} instead.")
      if isinstance(manager, Manager):
        for p, _ in failed:
          manager.forget(p)
    return path
  path, reason = failed[0]
  if checkpoint_path is not None:
    advice = "choose another step, or use a new --model_dir."
  elif len(failed) == 1:
    advice = ("it is the only one: delete the checkpoints directory to start over, or use a new "
              "--model_dir.")
  else:
    advice = (f"so are the {len(failed) - 1} older one(s); delete the checkpoints directory to "
              "start over, or use a new --model_dir.")
  raise errors.ConfigError(
      f"Could not restore checkpoint {path}: {reason}. The file is corrupt or was written by a "
      f"different model; {advice}")


def checkpoint_for_step(model_dir, step):
  """Path of the checkpoint saved at `step`, or a clear error listing what exists."""
  directory = storage.join(model_dir, "checkpoints")
  state = tf.train.get_checkpoint_state(directory)
  paths = list(state.all_model_checkpoint_paths) if state else []
  for p in paths:
    if p.endswith(f"ckpt-{step}"):
      return p
  raise errors.ConfigError(
      f"No checkpoint for step {step} in {directory}; available: "
      f"{', '.join(storage.basename(p) for p in paths) or 'none'}.")


def best_dir(model_dir):
  """`<model_dir>/checkpoints/best`: the best checkpoint by an eval metric (`training.best`)."""
  return storage.join(model_dir, CHECKPOINT_DIR, BEST_DIR)


def resolve_checkpoint(model_dir, step=None):
  """The checkpoint a `--step` value names: None (the latest), or its path.

  The one step resolution of every script that reads a run (sample, eval, diagnose, export).

  Args:
    model_dir: the run directory.
    step: None or 'latest' (the latest: returns None, for `restore`'s own choice), an int or a
      string of digits (the rotation's `ckpt-<step>`), or 'best' (`checkpoints/best/`, kept when
      training evaluates: `train.eval_every_steps`).

  Raises:
    ConfigError: another value, no such step, or no best checkpoint.
  """
  if step is None or step == "latest":
    return None
  if isinstance(step, str) and step.strip().isdigit():
    step = int(step)
  if isinstance(step, int) and not isinstance(step, bool):
    return checkpoint_for_step(model_dir, step)
  errors.check(step == "best", f"--step must be a step number, 'latest' or 'best'; got {step!r}.")
  path = tf.train.latest_checkpoint(best_dir(model_dir))
  errors.check(path is not None,
               f"No best checkpoint in {best_dir(model_dir)}: training keeps one only when it "
               "evaluates (train.eval_every_steps, or train.py --eval_every=N). Pass a step "
               "number, or evaluate the run's checkpoints with scripts/eval.py --all.")
  return path
