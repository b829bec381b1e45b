"""A training run's directory: run.json, the checks a run directory makes before it is written,
the lease, and the checkpoint directory of each process.

A run directory holds:
  checkpoints/    tf.train.CheckpointManager files (G, D, EMA G, both optimizers, step, method state)
  checkpoints/best/   the best checkpoint by an eval metric, when training evaluates
  eval/results.json   in-training (and scripts/eval.py) evaluation results
  operative_config.gin, config.gin   the gin config (a resume with a different one fails)
  run.json        data shape, classes, latent size, method: enough to rebuild G without the data
  train/          TensorBoard events;  samples/  PNG grids from a fixed z

Multi-worker: only the chief writes these; every worker takes part in checkpointing (the others
into a temporary directory that is deleted after each save) and restores from the chief's.
"""

import json
import os

from absl import logging

from tfadvgan import data as data_lib
from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.training import checkpoints
from tfadvgan.training import cluster
from tfadvgan.training import engine as engine_lib

RUN_FILE = "run.json"

DATA_HINT = ("Point at the data with --gin_param, e.g. --gin_param \"dataset.path = "
             "'/path/to/data'\" (local sources), --gin_param \"dataset.data_dir = '/path/to/tfds'\" "
             "(TFDS) or --gin_param \"dataset.source = '...'\".")


def write_run_info(model_dir, source, gan, method):
  info = {"shape": list(source.shape), "num_classes": int(source.num_classes),
          "dataset": source.name, "method": method, "latent_dim": int(gan.generator.latent_dim),
          "conditional": bool(gan.conditional)}
  storage.atomic_write(storage.join(model_dir, RUN_FILE), json.dumps(info, indent=2))


def read_run_info(model_dir):
  path = storage.join(model_dir, RUN_FILE)
  return storage.read_required_json(
      path, f"{model_dir} is not a tfadvgan run directory (no {RUN_FILE}); pass the "
      "--model_dir that train.py wrote.", "fix or delete it.")


def check_same_data(model_dir, source):
  """ConfigError when `model_dir` holds a run trained on data of another shape or class count
  (the data changed between two runs of one run dir), naming both."""
  if not storage.exists(storage.join(model_dir, RUN_FILE)):
    return
  info = read_run_info(model_dir)
  saved = (tuple(info.get("shape", ())), int(info.get("num_classes", 0)))
  now = (tuple(source.shape), int(source.num_classes))
  errors.check(saved == now,
               f"The data changed since {model_dir} was trained: it holds a run on "
               f"{info.get('dataset')} of shape {saved[0]} with {saved[1]} classes, and the data "
               f"loaded now ({source.name}) has shape {now[0]} with {now[1]} classes. Pass the "
               "run's data (dataset.* in its operative_config.gin), or use a new --model_dir.")


def load_run_source(info, split, use_run_source=True):
  """A trained run's dataset (its `dataset.*` gin config) for `split`, checked against run.json.

  Args:
    info: the run's run.json (`read_run_info`).
    split: data split to load.
    use_run_source: for 2-D toy runs, load the source run.json names (the one actually trained on,
      also after a ring fallback) instead of the configured one.

  Raises:
    ConfigError: the data cannot be loaded (with DATA_HINT), or its shape differs from the run's.
  """
  kwargs = {}
  if use_run_source and len(info["shape"]) == 1 and info.get("dataset") in data_lib.SOURCES:
    kwargs["source"] = info["dataset"]
  try:
    source = data_lib.load(split=split, **kwargs)
  except errors.ConfigError as e:
    raise errors.ConfigError(f"Could not load the run's data (split {split!r}): {e}\n"
                             f"{DATA_HINT}") from None
  except Exception as e:  # pylint: disable=broad-except  (missing TFDS data, no binding, ...)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise errors.ConfigError(f"Could not load the run's data (split {split!r}): "
                             f"{type(e).__name__}: {first}\n{DATA_HINT}") from None
  errors.check(list(source.shape) == list(info["shape"]),
               f"The data loaded ({source.name}, shape {tuple(source.shape)}) does not match the "
               f"run's shape {tuple(info['shape'])}. {DATA_HINT}")
  return source


class RunDir:
  """The run directory `path` as this process of a training run sees it.

  `with RunDir(path, strategy) as run_dir:` holds the directory's lease for the run (the workers'
  start-up agreement and the chief's lease: `cluster.start`, before anything is written) and
  releases it on exit. `open_checkpoints` then checks the directory against the run and prepares
  the process's checkpoint manager.

  Attributes:
    path: the run directory.
    chief: whether this process writes the directory (TF's chief rule, `engine.is_chief`).
    lease: the chief's `lease.Lease` while inside the `with` (None on the other workers).
    manager: this process's checkpoint manager (after `open_checkpoints`): the chief's writes
      `checkpoints/`, another worker's a temporary directory `temp_dir`, deleted after each save.
    temp_dir: that temporary directory (None on the chief).
  """

  def __init__(self, path, strategy):
    self.path = path
    self.strategy = strategy
    self.chief = engine_lib.is_chief(strategy)
    self.lease = None
    self.manager = None
    self.temp_dir = None

  def __enter__(self):
    self.lease = cluster.start(self.strategy, self.path, self.chief)
    return self

  def __exit__(self, *exc_info):
    if self.lease is not None:
      self.lease.release()
    return False

  def open_checkpoints(self, gan, source, keep_checkpoints):
    """Creates the directory (chief), checks its data and config (chief), restores the latest
    checkpoint into `gan`, sets `manager` and writes run.json (chief).

    Returns:
      The global step the run starts from (0 for a new run).

    Raises:
      ConfigError: the directory holds a run on other data or with another config.
    """
    if self.chief:
      storage.makedirs(self.path)
    with self.strategy.scope():
      manager = checkpoints.make_manager(gan, self.path, max_to_keep=keep_checkpoints)
    if self.chief:  # before the restore, whose shape mismatch would read as a corrupt checkpoint
      check_same_data(self.path, source)
      checkpoints.check_and_save_config(self.path,
                                        resuming=manager.latest_checkpoint is not None)
    resumed_from = checkpoints.restore(manager)
    if not self.chief:  # TF's multi-worker pattern: save into a per-worker directory, delete it
      self.temp_dir = os.path.join(self.path,
                                   f"worker_{engine_lib.task_id(self.strategy)}_tmp_ckpt")
      with self.strategy.scope():
        manager = checkpoints.Manager(manager.checkpoint, self.temp_dir, max_to_keep=1)
    self.manager = manager
    if self.chief:
      write_run_info(self.path, source, gan, gan.method_name)
    start = int(gan.global_step.numpy())
    if resumed_from and self.chief:
      logging.info(f"resumed from {resumed_from} at step {start}")
    return start

  def latest_checkpoint(self):
    """The chief's newest checkpoint in the directory (read by any worker), or None."""
    return cluster.latest_checkpoint(self.path)
