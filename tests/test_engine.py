"""The training engine (`tfadvgan.training.engine`): the loop over `strategy.run` that every run
goes through, its input sharding on one host, steps_per_execution, stops, and console progress."""

import contextlib
import io
import logging
import os
import re

import gin
import numpy as np
import pytest
import tensorflow as tf

from helpers import event_scalars, logged  # pylint: disable=g-bad-import-order
from tfadvgan.cli import common
from tfadvgan.training import callbacks as callbacks_lib
from tfadvgan.training import engine as engine_lib
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small DCGAN with synchronized BN (so 1 and 2 replicas compute the same statistics) and SGD (an
# update linear in the gradient, so a reordered sum stays at float32 rounding).
PARAMS = ["build_generator.width = 8", "build_discriminator.width = 8",
          "build_generator.synchronized_bn = True", "build_discriminator.synchronized_bn = True",
          "build_gan.latent_dim = 16", "train.batch_size = 8", "train.diagnose_every_steps = 0",
          "make_optimizer.name = 'sgd'", "make_optimizer.learning_rate = 0.02",
          "make_train_dataset.shuffle_buffer = 64"]


# What these tests check happens on the host between calls (progress lines, stop requests, the
# non-finite guard), so they run the step eagerly: tracing the DCGAN step would cost ~10 s each.
# The compiled path: test_two_replicas_through_train_match_one_device and
# test_steps_per_execution_fires_callbacks_at_the_next_multiple.
EAGER = "build_gan.run_eagerly = True"


def npz(tmp_path, seed):
  rng = np.random.default_rng(seed)
  path = str(tmp_path / "data.npz")
  np.savez(path, images=rng.integers(0, 256, (96, 32, 32, 1), dtype=np.uint8),
           labels=rng.integers(0, 4, 96))
  return path


def configure(tmp_path, seed, *extra):
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs", "common", "dcgan.gin")],
                   PARAMS + ["dataset.source = 'npz'", f"dataset.path = '{npz(tmp_path, seed)}'"]
                   + list(extra))


def weights(gan):
  return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]


def test_two_replicas_through_train_match_one_device(tmp_path):
  """`train()`'s per-replica input (distribute_datasets_from_function) keeps the global batch."""
  common_params = ["train.num_steps = 4", "GAN.n_dis = 2", "train.verbose = 0",
                   "train.sample_every_steps = 100", "train.checkpoint_every_steps = 100"]
  configure(tmp_path, 1, *common_params)
  one = weights(loop.train(str(tmp_path / "one")))
  configure(tmp_path, 1, *common_params, "train.strategy = 'mirrored'",
            "make_strategy.devices = ['/cpu:0', '/cpu:1']")
  two_gan = loop.train(str(tmp_path / "two"))
  assert two_gan.distribute_strategy.num_replicas_in_sync == 2
  for a, b in zip(one, weights(two_gan)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert any(np.abs(a).sum() > 0 for a in one)


def test_steps_per_execution_fires_callbacks_at_the_next_multiple(tmp_path):
  """k = 4 steps per call, 10 steps: calls end at 4, 8, 10; an interval fires at the first call
  end at or past each multiple (checkpoints every 3: saved at 4, 8 and 10)."""
  configure(tmp_path, 2, "build_gan.steps_per_execution = 4", "train.num_steps = 10",
            "train.checkpoint_every_steps = 3", "train.log_every_steps = 2",
            "train.sample_every_steps = 5", "train.keep_checkpoints = 10", "train.verbose = 0")
  model_dir = str(tmp_path / "run")
  evaluated, counted = [], []

  def eval_fn(gan, step):
    # The callbacks' step is the engine's host count, equal to the device's (read here).
    counted.append((engine_lib.for_gan(gan).state.host_step, int(gan.global_step.numpy())))
    evaluated.append(step)
    return {"answer": 42.0}
  gan = loop.train(model_dir, eval_every_steps=3, eval_fn=eval_fn)
  assert int(gan.global_step.numpy()) == 10
  assert evaluated == [4, 8, 10]
  assert counted == [(4, 4), (8, 8), (10, 10)] and engine_lib.for_gan(gan).state.host_step is None
  state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
  assert [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] == [4, 8, 10]
  assert sorted(os.listdir(os.path.join(model_dir, "samples"))) == [
      "samples_00000008.png", "samples_00000010.png"]  # crossed 5 at 8, crossed 10 at 10 (+ end)
  steps = set()
  for path in tf.io.gfile.glob(os.path.join(model_dir, "train", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      if any(v.tag == "train/d_loss" for v in event.summary.value):
        steps.add(event.step)
  assert sorted(steps) == [4, 8, 10]


def test_progress_prints_one_plain_line_per_interval_with_the_global_step(tmp_path, caplog):
  """Not a terminal: plain lines (no carriage returns); a resumed run counts from where it is."""
  caplog.set_level(logging.INFO, logger="absl")
  configure(tmp_path, 3, "train.num_steps = 4", "train.log_every_steps = 2",
            "train.sample_every_steps = 100", "train.checkpoint_every_steps = 100", EAGER)
  model_dir = str(tmp_path / "run")
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    loop.train(model_dir)
  first = out.getvalue()
  assert "\r" not in first
  lines = [l for l in first.splitlines() if l.startswith("step ")]
  assert [l.split()[1] for l in lines] == ["2/4", "4/4"], first
  assert re.search(r"d_loss [-\d.e]+  g_loss [-\d.e]+ .* ms/step", lines[0])
  assert "ETA" in lines[1]
  configure(tmp_path, 3, "train.num_steps = 6", "train.log_every_steps = 2",
            "train.sample_every_steps = 100", "train.checkpoint_every_steps = 100", EAGER)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    loop.train(model_dir)
  lines = [l for l in out.getvalue().splitlines() if l.startswith("step ")]
  assert [l.split()[1] for l in lines] == ["6/6"], out.getvalue()
  assert f"resumed from {model_dir}/checkpoints/ckpt-4 at step 4" in logged(caplog)
  assert f"tensorboard --logdir={model_dir}" in logged(caplog)[-1]


def test_progress_on_a_terminal_rewrites_one_line():
  class Gan:
    step = 0
    global_step = property(lambda self: tf.constant(self.step))
  gan = Gan()
  stream = io.StringIO()
  progress = callbacks_lib.Progress(gan, every=100, num_steps=3, stream=stream, tty=True)
  progress.on_train_begin()
  for step in (1, 2, 3):
    gan.step = step
    progress.last_draw = 0.0  # draw every step
    progress.on_train_batch_end(step, {"d_loss": 0.5, "g_loss": 2.0, "wdist": 1.0})
  progress.on_train_end()
  text = stream.getvalue()
  assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
  assert "step 3/3  d_loss 0.5  g_loss 2  " in text and "wdist" not in text


def test_no_sample_grid_from_non_finite_weights(tmp_path):
  configure(tmp_path, 4, "train.num_steps = 1", "train.verbose = 0")
  gan = loop.build_gan((32, 32, 1), 0)
  writer = tf.summary.create_file_writer(str(tmp_path / "events"))
  guard = callbacks_lib.NanGuard(gan)
  grid = callbacks_lib.SampleGrid(gan, writer, 1, str(tmp_path / "samples"), guard=guard)
  assert grid.write() is not None  # finite: written
  kernel = gan.generator.trainable_weights[0]
  kernel.assign(tf.fill(kernel.shape, np.nan))
  assert grid.write() is None
  assert len(os.listdir(tmp_path / "samples")) == 1


def test_a_stop_request_stops_before_the_next_call(tmp_path):
  from tfadvgan.training import engine  # pylint: disable=g-import-not-at-top
  configure(tmp_path, 5, "train.verbose = 0", EAGER)
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  source = data_lib.load()
  gan = loop.build_gan(source.shape, source.num_classes)
  ds = data_lib.make_train_dataset(source, 8, n_dis=1, latent_dim=16, seed=0)
  calls = []
  logs = engine.fit(gan, ds, 50, stop_requested=lambda: len(calls.append(1) or calls) > 3)
  assert int(gan.global_step.numpy()) == 3 and gan.stop_training
  assert np.isfinite(logs["d_loss"])


def test_non_finite_guard_with_steps_per_execution_stops_at_the_call_end(tmp_path):
  """SGD at lr 1e30 diverges in the first call of 4 steps: the guard stops there, saves nothing
  and writes no sample grid."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  configure(tmp_path, 6, "build_gan.steps_per_execution = 4", "train.num_steps = 12",
            "make_optimizer.learning_rate = 1e30", "train.checkpoint_every_steps = 100",
            "train.sample_every_steps = 2", "train.verbose = 0", EAGER)
  model_dir = str(tmp_path / "run")
  with pytest.raises(errors.ConfigError, match=r"Training diverged: \w+ = (nan|inf|-inf) at step 4"):
    loop.train(model_dir)
  assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) is None
  assert not os.path.exists(os.path.join(model_dir, "samples")) or not os.listdir(
      os.path.join(model_dir, "samples"))


def test_steps_per_execution_logs_the_mean_of_its_window(tmp_path):
  """k = 2 steps per call, a window of 2 steps, 4 steps: the trackers reset at the first step of
  each call that starts a window, so the `d_loss` logged at step 4 is the mean of steps 3 and 4 of
  a one-step-per-call run that logs every step (reset at the last step of the call instead: step
  4's value alone)."""
  common_params = ["train.num_steps = 4", "train.sample_every_steps = 100",
                   "train.checkpoint_every_steps = 100", "train.verbose = 0", EAGER]
  configure(tmp_path, 7, *common_params, "train.log_every_steps = 1")
  loop.train(str(tmp_path / "one"))
  each = event_scalars(str(tmp_path / "one" / "train"), "train/d_loss")
  configure(tmp_path, 7, *common_params, "train.log_every_steps = 2",
            "build_gan.steps_per_execution = 2")
  loop.train(str(tmp_path / "two"))
  windows = event_scalars(str(tmp_path / "two" / "train"), "train/d_loss")
  assert sorted(each) == [1, 2, 3, 4] and sorted(windows) == [2, 4]
  assert abs(each[3] - each[4]) > 1e-3  # the window's mean differs from either step's value
  np.testing.assert_allclose(windows[2], (each[1] + each[2]) / 2, rtol=1e-5)
  np.testing.assert_allclose(windows[4], (each[3] + each[4]) / 2, rtol=1e-5)
