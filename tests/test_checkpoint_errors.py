"""Checkpoints and run directories under failure: a corrupt checkpoint, a full disk, a read-only or
impossible model_dir, and a run that diverged before its first checkpoint."""
import contextlib
import glob
import logging
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from helpers import logged  # pylint: disable=g-bad-import-order
from tfadvgan import errors
from tfadvgan.cli import common
from tfadvgan.training import checkpoints
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
        "train.log_every_steps = 1", "train.checkpoint_every_steps = 1",
        "train.sample_every_steps = 100", "make_train_dataset.shuffle_buffer = 16",
        "train.verbose = 0", "train.diagnose_every_steps = 0", "build_gan.run_eagerly = True"]


def _data(tmp_path):
  rng = np.random.default_rng(11)
  path = str(tmp_path / "data.npz")
  if not os.path.exists(path):
    np.savez(path, images=rng.integers(0, 256, (32, 32, 32, 1)).astype(np.uint8),
             labels=(np.arange(32) % 10).astype(np.int64))
  return path


def _parse(tmp_path, *extra):
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin")],
                   TINY + ["dataset.source = 'npz'", f"dataset.path = '{_data(tmp_path)}'"]
                   + list(extra))


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def _listing(directory):
  return sorted(os.path.relpath(os.path.join(d, f), directory)
                for d, _, files in os.walk(directory) for f in files)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  model_dir = str(tmp_path / "run")
  ckpt_dir = os.path.join(model_dir, "checkpoints")
  _parse(tmp_path, "train.num_steps = 3")
  loop.train(model_dir)
  assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-3")
  [data] = glob.glob(os.path.join(ckpt_dir, "ckpt-3.data-*"))
  _truncate(data)
  caplog.clear()

  # Reading (sample / eval / diagnose) falls back too, and changes nothing on disk.
  before = _listing(model_dir)
  _, _, path = loop.restore_run(model_dir)
  assert path.endswith("ckpt-2")
  [warning] = logged(caplog, logging.WARNING)
  assert "ckpt-3" in warning and "using ckpt-2 instead" in warning
  assert _listing(model_dir) == before

  # Resuming continues from ckpt-2's step, warns once, and the next save replaces ckpt-3.
  _parse(tmp_path, "train.num_steps = 4")
  caplog.clear()
  gan = loop.train(model_dir)
  [warning] = logged(caplog, logging.WARNING)
  assert "checkpoint ckpt-3 in" in warning and "is unreadable" in warning
  assert "using ckpt-2 instead" in warning
  assert f"resumed from {os.path.join(ckpt_dir, 'ckpt-2')} at step 2" in logged(caplog)
  assert int(gan.global_step.numpy()) == 4
  state = tf.train.get_checkpoint_state(ckpt_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4"]
  # The unreadable files were moved aside (kept for inspection), never read again.
  assert os.path.exists(data + checkpoints.CORRUPT_SUFFIX)
  assert os.path.getsize(data) > os.path.getsize(data + checkpoints.CORRUPT_SUFFIX)

  # The next run restores ckpt-4 with no warning.
  _parse(tmp_path, "train.num_steps = 4")
  caplog.clear()
  loop.train(model_dir)
  assert not logged(caplog, logging.WARNING)
  assert any("ckpt-4 at step 4" in m for m in logged(caplog))


def test_no_readable_checkpoint_is_one_error_whose_advice_works(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  model_dir = str(tmp_path / "run")
  ckpt_dir = os.path.join(model_dir, "checkpoints")
  _parse(tmp_path, "train.num_steps = 2")
  loop.train(model_dir)
  for path in glob.glob(os.path.join(ckpt_dir, "ckpt-*.data-*")):
    _truncate(path)
  _parse(tmp_path, "train.num_steps = 2")
  with pytest.raises(errors.ConfigError) as info:
    loop.train(model_dir)
  message = common.strip_gin_context(str(info.value))
  assert "\n" not in message
  assert message.startswith(f"Could not restore checkpoint {os.path.join(ckpt_dir, 'ckpt-2')}:")
  assert "so are the 1 older one(s); delete the checkpoints directory to start over" in message
  assert not logged(caplog, logging.WARNING)
  # Following the advice: delete the checkpoints directory, run the same command again.
  tf.io.gfile.rmtree(ckpt_dir)
  _parse(tmp_path, "train.num_steps = 2")
  gan = loop.train(model_dir)
  assert int(gan.global_step.numpy()) == 2
  assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-2")


def test_an_explicit_step_does_not_fall_back(tmp_path):
  model_dir = str(tmp_path / "run")
  _parse(tmp_path, "train.num_steps = 2")
  loop.train(model_dir)
  [data] = glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-2.data-*"))
  _truncate(data)
  with pytest.raises(errors.ConfigError, match=r"ckpt-2: .*choose another step"):
    loop.restore_run(model_dir, step=2)


@contextlib.contextmanager
def _tmpfs(directory, options):
  """Mounts a tmpfs at `directory` (needs root / CAP_SYS_ADMIN); skips the test otherwise."""
  os.makedirs(directory, exist_ok=True)
  proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                        capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); the "
                "full-disk / read-only checks need one")
  try:
    yield str(directory)
  finally:
    subprocess.run(["umount", "-l", str(directory)], check=False)


def test_full_disk_is_one_line_and_leaves_no_partial_checkpoint(tmp_path):
  # A real 4 MiB tmpfs. A checkpoint of this model is ~0.9 MB, so ckpt-1..4 fit and ckpt-5 does
  # not: the save of ckpt-5 runs out of space half way, as in the reported failure.
  with _tmpfs(tmp_path / "disk", "size=4m") as disk:
    model_dir = os.path.join(disk, "run")
    ckpt_dir = os.path.join(model_dir, "checkpoints")
    _parse(tmp_path, "train.num_steps = 8")
    with pytest.raises(errors.ConfigError) as info:
      loop.train(model_dir)
    message = common.strip_gin_context(str(info.value))
    assert message == (f"Cannot save a checkpoint in {ckpt_dir}: the disk is full: free space "
                       "there, or write to a location with more space."), message
    names = os.listdir(ckpt_dir)
    assert not [n for n in names if "_temp" in n or n.startswith(".tmp")], names
    latest = tf.train.latest_checkpoint(ckpt_dir)
    step = int(latest.rsplit("-", 1)[1])
    assert 1 <= step < 8
    # Only whole checkpoints remain, each listed in the state file and readable.
    assert sorted(n for n in names if n.startswith("ckpt-")) == sorted(
        f"ckpt-{s}{suffix}" for s in range(1, step + 1)
        for suffix in (".index", ".data-00000-of-00001"))
    tf.train.load_checkpoint(latest).get_variable_to_shape_map()


def test_read_only_model_dir_parent_is_one_line(tmp_path):
  # Root ignores permission bits, so a read-only *filesystem* (a tmpfs mounted ro) it is.
  with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
    model_dir = os.path.join(ro, "run")
    _parse(tmp_path, "train.num_steps = 1")
    with pytest.raises(errors.ConfigError) as info:
      loop.train(model_dir)
    assert common.strip_gin_context(str(info.value)) == (f"Cannot create directory {model_dir}: that filesystem is "
                               "read-only: choose a writable location.")


def test_model_dir_under_a_file_is_one_line_from_the_cli(tmp_path):
  # The same error path as any unwritable parent, reachable without privileges.
  (tmp_path / "afile").write_text("not a directory")
  model_dir = str(tmp_path / "afile" / "run")
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
       "--gin_file=gin_configs/base/dcgan_fmnist.gin", f"--model_dir={model_dir}"]
      + [f"--gin_param={p}" for p in TINY + ["dataset.source = 'npz'", "train.num_steps = 1",
                                             f"dataset.path = '{_data(tmp_path)}'"]],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: Cannot create directory {model_dir}: a part of that path is a file, not a "
      "directory: choose another path.")
  assert sorted(os.listdir(tmp_path)) == ["afile", "data.npz"]


def test_config_is_checked_after_a_run_that_never_checkpointed(tmp_path):
  # Diverges at once (SGD with a learning rate of 1e30), long before its first checkpoint.
  model_dir = str(tmp_path / "run")
  bad = ["train.num_steps = 4", "train.checkpoint_every_steps = 100",
         "make_optimizer.learning_rate = 1e30", "make_optimizer.name = 'sgd'"]
  _parse(tmp_path, *bad)
  with pytest.raises(loop.TrainingDiverged):
    loop.train(model_dir)
  assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) is None
  saved = open(os.path.join(model_dir, checkpoints.OPERATIVE_FILE)).read()
  # Another config into the same directory: refused, and the saved config is kept.
  _parse(tmp_path, "train.num_steps = 4", "make_optimizer.learning_rate = 1e-4")
  with pytest.raises(errors.ConfigError) as info:
    loop.train(model_dir)
  message = common.strip_gin_context(str(info.value))
  assert "holds a run trained with a different config" in message
  assert "make_optimizer.learning_rate: saved 1e+30 -> now 0.0001" in message
  assert "make_optimizer.name: saved 'sgd' -> now 'adam'" in message
  assert f"It holds no checkpoint, so you may also delete {model_dir} and start over." in message
  assert open(os.path.join(model_dir, checkpoints.OPERATIVE_FILE)).read() == saved
