"""`export_run`: a trained run's generator (the EMA copy when the run keeps one) as files for use.

The export directory (default `MODEL_DIR/export`) holds:
  generator.keras   the float32 generator (`keras.models.load_model` after `import tfadvgan.models`)
  saved_model/      a SavedModel with the serving signature of `tfadvgan.models.export`, loadable
                    with plain TensorFlow
  export.json       the checkpoint exported, the inputs and the output (dtype, shape, range)

The run is restored as sample.py and eval.py restore it (`run.restore_run`), so the generator is
float32 whatever `train.mixed_precision` the run trained with (checkpoints hold float32 weights).
Everything is written into a temporary sibling directory that replaces `out` only once complete:
a failed export leaves no partial output, and an earlier export at `out` stays until then. An
`out` that exists and is not an earlier export (a run directory, say) is refused.
"""

import uuid

from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.models import export as export_lib
from tfadvgan.training import run as run_lib

KERAS_FILE = "generator.keras"
SAVED_MODEL_DIR = "saved_model"
INFO_FILE = "export.json"


def _write(generator, directory, info):
  with storage.writing(directory):
    generator.save(storage.join(directory, KERAS_FILE))
  with storage.writing(directory):
    export_lib.save_saved_model(generator, storage.join(directory, SAVED_MODEL_DIR))
  storage.atomic_write_json(storage.join(directory, INFO_FILE), info)


def _replace(tmp, out):
  """Moves the complete export `tmp` to `out`; an existing `out` is removed only after that."""
  old = None
  if storage.exists(out):
    old = f"{out}{storage.TEMP_PREFIX}old-{uuid.uuid4().hex[:8]}"
    storage.rename_dir(out, old)
  storage.rename_dir(tmp, out)
  if old is not None:
    storage.rmtree(old)


def _check_out(out):
  """`out` must be new, empty, or an earlier export (which is replaced): never a run directory
  or anything else that replacing would delete."""
  if not storage.exists(out):
    return
  errors.check(storage.isdir(out), f"--out {out} is a file; choose a directory path.")
  errors.check(not storage.listdir(out) or storage.exists(storage.join(out, INFO_FILE)),
               f"--out {out} exists and is not an earlier export (no {INFO_FILE}); choose a new "
               "directory (the default is MODEL_DIR/export).")


def export_run(model_dir, out=None, step=None):
  """Exports the run's sampling generator (EMA when kept) at `step` (default: latest).

  Returns:
    (checkpoint path, {"keras": path, "saved_model": path, "info": path}).

  Raises:
    ConfigError: not a run directory, no checkpoint (at `step`), an `out` that is neither new,
      empty nor an earlier export, an unwritable `out`.
  """
  out = out or storage.join(model_dir, "export")
  _check_out(out)
  gan, info, path = run_lib.restore_run(model_dir, step)
  generator = gan.sampler()
  parent = storage.dirname(storage.abspath(out))
  tmp = storage.join(parent, f"{storage.TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{storage.basename(out)}")
  description = dict(
      checkpoint=path, step=int(gan.global_step.numpy()), method=info.get("method"),
      ema=gan.generator_ema is not None,
      **export_lib.description(generator))
  storage.makedirs(tmp)
  try:
    _write(generator, tmp, description)
    _replace(tmp, out)
  except BaseException:
    if storage.exists(tmp):
      storage.rmtree(tmp)
    raise
  return path, {"keras": storage.join(out, KERAS_FILE), "saved_model": storage.join(out, SAVED_MODEL_DIR),
                "info": storage.join(out, INFO_FILE)}
