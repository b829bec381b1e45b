r"""The Rob-GAN fine-tuning run (Eq. 10): `finetune_run(model_dir, out_dir)`, which the command line
`scripts/finetune.py` (tfadvgan/cli/finetune.py) calls; the fine-tuner itself is
`tfadvgan.training.finetune.ClassifierFinetuner`.

Restores the trained run in --model_dir (`run.restore_run`: its operative config and latest
checkpoint), fine-tunes D's classifier head f = D^c on the run's own training data (the same
`dataset.*` source and `make_train_dataset` pipeline as train.py, one real batch and one batch of
G's noise / class labels per step), and writes --out_dir as a normal run directory: the source's
run.json, operative_config.gin and config.gin (copied unchanged, so `run.restore_run`,
scripts/diagnose.py, eval.py and sample.py rebuild the same model), `checkpoints/ckpt-N` with N the
source checkpoint's number (G, EMA G and both GAN optimizers as restored; D fine-tuned), plus
`finetune.json` (source, settings, final logged values), `finetune_operative_config.gin` (the gin
values in force during fine-tuning, for the record) and TensorBoard events in `finetune/`.
--out_dir must be new or empty and differ from --model_dir; everything is written to a hidden
staging directory next to it and renamed at the end, so a failed or interrupted fine-tune leaves no
partial run. Check the result with

  python scripts/diagnose.py --model_dir=RUN_finetuned --which=class_pgd

Fine-tuning runs on one device (the default strategy, as `restore_run` builds the model) and is not
resumable: an interrupted run restarts from the source checkpoint.
"""

import contextlib
import json
import re
import time
import uuid

import gin
import tensorflow as tf
from absl import logging

from tfadvgan import config
from tfadvgan import data as data_lib
from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.training import checkpoints
from tfadvgan.training import finetune
from tfadvgan.training import run as run_lib
from tfadvgan.training import run_dir

FINETUNE_FILE = "finetune.json"
FINETUNE_CONFIG_FILE = "finetune_operative_config.gin"


def _load_source(info):
  """The run's labelled training data (its `dataset.*` config), checked against run.json."""
  source = run_dir.load_run_source(info, "train")
  errors.check(source.num_classes > 0,
               f"Dataset {source.name!r} has no labels; classifier fine-tuning needs the labelled "
               "training data of the run.")
  return source


def _checkpoint_number(path, gan):
  match = re.search(r"ckpt-(\d+)$", path or "")
  return int(match.group(1)) if match else int(gan.global_step.numpy())


def _check_dirs(model_dir, out_dir):
  """ConfigError unless `model_dir` is a directory and `out_dir` another one, new or empty."""
  errors.check(model_dir, "--model_dir is required: the trained run to fine-tune.")
  errors.check(out_dir, "--out_dir is required: a new directory for the fine-tuned run.")
  errors.check(storage.realpath(model_dir) != storage.realpath(out_dir),
               f"--out_dir must be different from --model_dir ({model_dir}): fine-tuning writes a "
               "new run directory and leaves the trained run unchanged.")
  errors.check(storage.isdir(model_dir),
               f"--model_dir {model_dir} does not exist; pass the run directory train.py wrote.")
  if storage.exists(out_dir):
    errors.check(storage.isdir(out_dir) and not storage.listdir(out_dir),
                 f"--out_dir {out_dir} already exists and is not empty; pass a new directory (or "
                 "delete it).")


def _finetuner(gan):
  """`finetune.ClassifierFinetuner(gan)` with its gin bindings; a bad one is one line (without
  gin's context)."""
  try:
    return finetune.ClassifierFinetuner(gan)
  except errors.ConfigError as e:
    raise errors.ConfigError(config.strip_gin_context(str(e))) from None


@contextlib.contextmanager
def _staged(out_dir):
  """Yields a staging directory beside `out_dir`, which becomes `out_dir` when the block ends
  (one rename locally; a copy then a delete on object stores, see storage.rename_dir) and is deleted
  if it raises (anything, Ctrl-C included): a failed fine-tune leaves no partial run."""
  parent = storage.dirname(storage.abspath(out_dir))
  storage.makedirs(parent)
  staging = storage.join(parent, f".{storage.basename(storage.abspath(out_dir))}-tmp-{uuid.uuid4().hex[:8]}")
  storage.makedirs(staging)
  try:
    yield staging
    if storage.isdir(out_dir):
      storage.rmtree(out_dir)  # empty (checked before)
    storage.rename_dir(staging, out_dir)
  except BaseException:
    if storage.exists(staging):
      storage.rmtree(staging)
    raise


def _fine_tune(trainer, dataset, events_dir):
  """Runs the trainer's `total_steps` on `dataset`, logging the window means every
  `log_every_steps` (absl and TensorBoard events in `events_dir`).

  Returns:
    (the last window's means, seconds).

  Raises:
    ConfigError: a logged value was not finite (`ClassifierFinetuner.read_window`).
  """
  writer = tf.summary.create_file_writer(events_dir)
  total = trainer.total_steps
  t0 = time.time()
  final = {}
  iterator = iter(dataset)
  for i in range(total):
    batch = next(iterator)
    trainer.logged_step(batch["images"][:, 0], batch["labels"][:, 0], batch["z_g"],
                        batch["y_g"], tf.constant([trainer.seed, i], tf.int32))
    if (i + 1) % trainer.log_every_steps == 0 or i + 1 == total:
      mean = final = trainer.read_window()  # raises if a value was not finite
      with writer.as_default(step=i + 1):
        for key, value in mean.items():
          tf.summary.scalar(f"finetune/{key}", value)
      writer.flush()
      logging.info(f"finetune step {i + 1}/{total}: "
                   + ", ".join(f"{k} {v:.4g}" for k, v in sorted(mean.items())))
  writer.close()
  return final, time.time() - t0


def _write_run(staging, model_dir, gan, number):
  """The fine-tuned run directory in `staging`: the source's run.json and configs (copied
  unchanged), the gin values of the fine-tuning, and the checkpoint numbered `number`.

  Returns:
    The saved checkpoint's path (in `staging`).
  """
  for name in (run_dir.RUN_FILE, checkpoints.OPERATIVE_FILE, "config.gin"):
    if storage.exists(storage.join(model_dir, name)):
      storage.copy(storage.join(model_dir, name), storage.join(staging, name), overwrite=True)
  storage.atomic_write(storage.join(staging, FINETUNE_CONFIG_FILE), gin.operative_config_str())
  manager = checkpoints.make_manager(gan, staging, max_to_keep=1)
  return manager.save(checkpoint_number=number)


def finetune_run(model_dir, out_dir, gin_bindings=(), gin_files=()):
  """Fine-tunes the run in `model_dir` (Eq. 10) and writes the result as the run `out_dir`.

  Args:
    model_dir: a trained run directory (train.py's --model_dir) of a class-conditional GAN with an
      auxiliary-classifier head (Rob-GAN, Fast-RobGAN).
    out_dir: the new run directory (must differ from `model_dir`; new or empty).
    gin_bindings: bindings applied after the run's own config, e.g.
      'finetune_classifier.fake_weight = 0.3' or "dataset.path = '/moved/data.npz'".
    gin_files: gin files applied (before `gin_bindings`) after the run's own config.

  Returns:
    The summary written to `out_dir/finetune.json` (source_checkpoint, checkpoint, steps,
    fake_weight, the other settings, and `final`: the values logged at the last step, means over
    the last `log_every_steps` window).

  Raises:
    ConfigError: bad directories, bindings or settings, missing data, or a diverged loss.
  """
  _check_dirs(model_dir, out_dir)
  gan, info, source_ckpt = run_lib.restore_run(model_dir)
  if gin_files or gin_bindings:
    config.parse_gin(list(gin_files), list(gin_bindings), finalize=False)
  trainer = _finetuner(gan)
  batch_size = trainer.batch_size or run_lib.run_batch_size()
  source = _load_source(info)
  errors.check(source.num_classes == gan.generator.num_classes,
               f"The data has {source.num_classes} classes but the run's generator has "
               f"{gan.generator.num_classes}; use the run's dataset.")
  dataset = data_lib.make_train_dataset(
      source, batch_size=batch_size, n_dis=1, latent_dim=gan.generator.latent_dim,
      conditional=True, seed=trainer.seed, method="finetune")
  number = _checkpoint_number(source_ckpt, gan)
  with _staged(out_dir) as staging:
    logging.info(f"fine-tuning {source_ckpt}: {trainer.total_steps} steps of batch {batch_size}, "
                 f"fake_weight {trainer.fake_weight}, epsilon {trainer.epsilon}, {trainer.optimizer_name} "
                 f"lr {trainer.base_learning_rate}")
    final, seconds = _fine_tune(trainer, dataset, storage.join(staging, "finetune"))
    saved = _write_run(staging, model_dir, gan, number)
    summary = {"source_model_dir": storage.abspath(model_dir),
               "source_checkpoint": source_ckpt,
               "checkpoint": storage.join(storage.abspath(out_dir), "checkpoints", storage.basename(saved)),
               "steps": trainer.total_steps, "batch_size": batch_size, **trainer.settings(),
               "gin_files": list(gin_files), "gin_bindings": list(gin_bindings),
               "seconds": round(seconds, 3), "final": final}
    storage.atomic_write(storage.join(staging, FINETUNE_FILE), json.dumps(summary, indent=2))
  logging.info(f"wrote {summary['checkpoint']} and {storage.join(out_dir, FINETUNE_FILE)}")
  return summary
