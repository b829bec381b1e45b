"""Checkpoints (tf.train.CheckpointManager) and the saved operative gin config.

A run directory holds `checkpoints/ckpt-N.*`, `operative_config.gin` (the gin values in force,
defaults included) and `config.gin` (the bindings as given). Resuming with a different operative
config fails loudly, except for the bindings in `RESUMABLE` (how long to train, how often to log),
which a user may change to extend a run.
"""

import os
import re
import tempfile

import gin
import tensorflow as tf

from tfadvgan import errors

RESUMABLE = frozenset({
    "train.num_steps", "train.log_every_steps", "train.checkpoint_every_steps",
    "train.sample_every_steps", "train.eval_every_steps", "train.keep_checkpoints",
    "train.verbose", "train.diagnose_every_steps",
})
# Evaluation settings do not change the training either.
RESUMABLE_PREFIXES = ("make_eval_fn.",)
OPERATIVE_FILE = "operative_config.gin"


def _resumable(key):
  return key in RESUMABLE or key.startswith(RESUMABLE_PREFIXES)


def atomic_write(path, data, mode="w"):
  """Writes to a temp file in the same directory, then renames: no half-written files."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with os.fdopen(fd, mode) as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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
  """Saves the operative config; on resume, fails if it differs outside RESUMABLE."""
  path = os.path.join(model_dir, OPERATIVE_FILE)
  current = gin.operative_config_str()
  if resuming and os.path.exists(path):
    with open(path) as f:
      saved = f.read()
    old, new = parse_bindings(saved), parse_bindings(current)
    diffs = sorted(k for k in set(old) | set(new)
                   if not _resumable(k) and old.get(k) != new.get(k))
    if diffs:
      lines = "\n".join(f"  {k}: saved {old.get(k, '<unset>')} -> now {new.get(k, '<unset>')}"
                        for k in diffs[:20])
      raise errors.ConfigError(
          f"{model_dir} holds a run trained with a different config:\n{lines}\n"
          "Use a new --model_dir, or pass the same gin files and params as the saved run "
          f"({path}).")
  atomic_write(path, current)
  atomic_write(os.path.join(model_dir, "config.gin"), gin.config_str())


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


def make_manager(gan, model_dir, max_to_keep=5):
  ckpt = make_checkpoint(gan)
  return tf.train.CheckpointManager(ckpt, os.path.join(model_dir, "checkpoints"),
                                    max_to_keep=max_to_keep)


def restore(manager, checkpoint_path=None):
  """Restores the latest (or given) checkpoint; clear errors for corrupt or mismatched files."""
  path = checkpoint_path or manager.latest_checkpoint
  if path is None:
    return None
  try:
    status = manager.checkpoint.restore(path)
    status.assert_existing_objects_matched()
  except Exception as e:  # pylint: disable=broad-except  (any failure here means unreadable)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise errors.ConfigError(
        f"Could not restore checkpoint {path}: {first[:300]}\nThe file is corrupt or was written "
        "by a different model; delete it (the manager then uses the previous one) or use a new "
        "--model_dir.") from None
  return path


def checkpoint_for_step(model_dir, step):
  """Path of the checkpoint saved at `step`, or a clear error listing what exists."""
  directory = os.path.join(model_dir, "checkpoints")
  state = tf.train.get_checkpoint_state(directory)
  paths = list(state.all_model_checkpoint_paths) if state else []
  for p in paths:
    if p.endswith(f"ckpt-{step}"):
      return p
  raise errors.ConfigError(
      f"No checkpoint for step {step} in {directory}; available: "
      f"{', '.join(os.path.basename(p) for p in paths) or 'none'}.")
