"""MultiWorkerMirroredStrategy for real: two `scripts/train.py` processes on 127.0.0.1.

Each cluster is two worker processes with their own TF_CONFIG (two free loopback ports, one CPU
device each), training a small synchronized-BN DCGAN on a generated npz into one model_dir. Every
child is bounded in time and killed if it hangs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

# pylint: disable-next=g-bad-import-order
from helpers import (TIMEOUT, checkpoint_arrays, event_scalars, latest_step, read_log,
                     start_cluster, wait_all)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = """
include '{root}/gin_configs/common/dcgan.gin'
dataset.source = 'npz'
dataset.path = '{data}'
build_generator.width = 8
build_discriminator.width = 8
build_generator.synchronized_bn = True
build_discriminator.synchronized_bn = True
build_gan.latent_dim = 16
train.batch_size = 8
train.log_every_steps = 2
train.sample_every_steps = 3
train.checkpoint_every_steps = 3
train.diagnose_every_steps = 0
# SGD: the update is linear in the gradient, so float reordering in the cross-worker sum stays at
# float32 rounding (Adam divides by sqrt(v) and turns such rounding in near-zero gradients into
# learning-rate-sized steps: ~1e-4 differences after 6 steps, measured).
make_optimizer.name = 'sgd'
make_optimizer.learning_rate = 0.02
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A 256-image 32x32 npz (its own seeded data) and the gin config."""
  base = tmp_path_factory.mktemp("multi_worker")
  rng = np.random.default_rng(20261130)
  data = str(base / "data.npz")
  np.savez(data, images=rng.integers(0, 256, (256, 32, 32, 1), dtype=np.uint8),
           labels=rng.integers(0, 4, 256))
  config = str(base / "cfg.gin")
  with open(config, "w") as f:
    f.write(CONFIG.format(root=ROOT, data=data))
  return base, config


@pytest.fixture(scope="module")
def trained_cluster(setup):
  """One two-worker run of 6 steps (checkpoints at 3 and 6)."""
  base, config = setup
  model_dir = str(base / "run")
  codes = wait_all(start_cluster(config, model_dir, ["train.num_steps = 6"]))
  assert codes == [0, 0], read_log(model_dir, 0)[-3000:] + read_log(model_dir, 1)[-3000:]
  return base, config, model_dir


def test_two_workers_give_the_updates_and_logs_of_one_process(trained_cluster):
  """Same global batches (one process reproducing the 2 input shards): same weights and logs."""
  from tfadvgan.cli import common  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as loop  # pylint: disable=g-import-not-at-top
  base, config, model_dir = trained_cluster
  reference = str(base / "reference")
  common.parse_gin([config], ["train.num_steps = 6", "make_train_dataset.input_shards = 2",
                              "train.verbose = 0"])
  loop.train(reference)
  got = checkpoint_arrays(os.path.join(model_dir, "checkpoints", "ckpt-6"))
  want = checkpoint_arrays(os.path.join(reference, "checkpoints", "ckpt-6"))
  assert set(got) == set(want) and len(got) > 20
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
  # The logged losses are the plain global means, equal to the one-process logs.
  for tag in ("train/d_loss", "train/g_loss", "train/d_real", "train/wdist"):
    cluster_logs = event_scalars(os.path.join(model_dir, "train"), tag)
    reference_logs = event_scalars(os.path.join(reference, "train"), tag)
    assert sorted(cluster_logs) == [2, 4, 6], (tag, cluster_logs)
    for step, value in reference_logs.items():
      assert cluster_logs[step] == pytest.approx(value, rel=1e-5, abs=1e-6), (tag, step)


def test_only_the_chief_writes_and_worker_checkpoints_are_removed(trained_cluster):
  _, _, model_dir = trained_cluster
  names = sorted(os.listdir(model_dir))
  assert names == ["checkpoints", "config.gin", "operative_config.gin", "run.json", "samples",
                   "train"], names  # no worker_1_tmp_ckpt left behind
  assert len(os.listdir(os.path.join(model_dir, "train"))) == 1  # one event file: the chief's
  assert sorted(os.listdir(os.path.join(model_dir, "samples"))) == [
      "samples_00000003.png", "samples_00000006.png"]
  assert latest_step(model_dir) == 6
  chief, worker = read_log(model_dir, 0), read_log(model_dir, 1)
  assert "[tfadvgan] done: step 6" in chief and "step 6/6" in chief
  assert "[tfadvgan]" not in worker and "step 6/6" not in worker


def test_input_pipelines_read_disjoint_shards():
  """Each worker's pipeline reads its own shard; together they form the global batch."""
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  n = 64
  source = data_lib.from_arrays(np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), "f4"),
                                np.arange(n) % 4)
  seen = []
  for worker in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                         num_replicas_in_sync=2)
    batch = next(iter(data_lib.make_train_dataset(source, 8, n_dis=2, latent_dim=3, seed=5,
                                                  input_context=context)))
    assert batch["images"].shape == (4, 2, 2)  # this worker's rows of the global batch of 8
    seen.append(set(np.asarray(batch["images"])[..., 0].ravel().astype(int).tolist()))
  assert not seen[0] & seen[1]
  assert all(i % 2 == 0 for i in seen[0]) and all(i % 2 == 1 for i in seen[1])
  # A single process with input_shards = 2 sees exactly the concatenation (noise included).
  whole = next(iter(data_lib.make_train_dataset(source, 8, n_dis=2, latent_dim=3, seed=5,
                                                input_shards=2)))
  parts = [next(iter(data_lib.make_train_dataset(
      source, 8, n_dis=2, latent_dim=3, seed=5, input_context=tf.distribute.InputContext(
          num_input_pipelines=2, input_pipeline_id=w, num_replicas_in_sync=2))))
           for w in range(2)]
  for key in whole:
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


@pytest.mark.slow  # 22 s; the resume path is also covered by SIGTERM-then-restart below
def test_restarted_cluster_resumes_from_the_chiefs_last_checkpoint(trained_cluster, tmp_path):
  base, config, model_dir = trained_cluster
  resumed = str(tmp_path / "resumed")
  shutil.copytree(model_dir, resumed)
  codes = wait_all(start_cluster(config, resumed, ["train.num_steps = 9"]))
  chief = read_log(resumed, 0)
  assert codes == [0, 0], chief[-3000:]
  assert f"resumed from {resumed}/checkpoints/ckpt-6 at step 6" in chief
  assert latest_step(resumed) == 9
  del base


def _wait_until(ready, model_dir, procs, what, timeout=TIMEOUT):
  """Polls `ready()` until true; kills the children and fails if they exit or time runs out."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if ready():
      return
    if any(p.poll() is not None for p in procs):
      break
    time.sleep(0.5)
  for p in procs:
    p.kill()
  log = read_log(model_dir, 0) if os.path.exists(f"{model_dir}.w0.log") else ""
  pytest.fail(f"{what} did not happen: {log[-2000:]}")


def _wait_for_checkpoint(model_dir, procs, at_least):
  def ready():
    step = latest_step(model_dir) if os.path.isdir(os.path.join(model_dir, "checkpoints")) \
        else None
    return step is not None and step >= at_least
  _wait_until(ready, model_dir, procs, f"a checkpoint >= {at_least}")


def _wait_for_a_logged_step(model_dir, procs):
  """Waits until the chief has logged a training step (training is under way)."""
  _wait_until(lambda: os.path.exists(f"{model_dir}.w0.log") and "step " in read_log(model_dir, 0),
              model_dir, procs, "a logged training step")


@pytest.mark.slow  # 41 s
def test_sigkill_one_worker_then_restart_loses_at_most_one_interval(setup, tmp_path):
  _, config = setup
  model_dir = str(tmp_path / "run")
  params = ["train.num_steps = 100000", "train.sample_every_steps = 100000"]
  procs = start_cluster(config, model_dir, params)
  _wait_for_checkpoint(model_dir, procs, at_least=6)
  procs[1].send_signal(signal.SIGKILL)
  procs[1].wait()
  time.sleep(1.0)
  procs[0].kill()  # the survivor blocks in (or fails) its next collective
  procs[0].wait()
  saved = latest_step(model_dir)
  # The newest checkpoint is whole: it restores every variable.
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir,
                                                                            "checkpoints")))
  assert len(reader.get_variable_to_shape_map()) > 20
  codes = wait_all(start_cluster(config, model_dir, [f"train.num_steps = {saved + 3}",
                                                     "train.sample_every_steps = 100000"],
                                 log_prefix=model_dir + "_restart"))
  chief = read_log(model_dir + "_restart", 0)
  assert codes == [0, 0], chief[-3000:]
  assert f"ckpt-{saved} at step {saved}" in chief
  assert latest_step(model_dir) == saved + 3
  assert not [n for n in os.listdir(model_dir) if n.startswith("worker_")]


@pytest.mark.slow  # 30 s beside another test process
def test_sigterm_to_one_worker_stops_both_with_a_checkpoint(setup, tmp_path):
  """Preemption: SIGTERM reaches one worker; every worker stops after the same step and saves."""
  _, config = setup
  model_dir = str(tmp_path / "run")
  procs = start_cluster(config, model_dir, ["train.num_steps = 100000",
                                            "train.checkpoint_every_steps = 1000",
                                            "train.sample_every_steps = 100000"])
  _wait_for_a_logged_step(model_dir, procs)
  procs[1].send_signal(signal.SIGTERM)
  codes = wait_all(procs, timeout=120)
  chief = read_log(model_dir, 0)
  assert codes == [75, 75], chief[-3000:]  # stopped early with a checkpoint: rerun to continue
  step = latest_step(model_dir)
  assert step is not None and step < 1000
  assert f"interrupted at step {step}; saved {model_dir}/checkpoints/ckpt-{step}" in chief


@pytest.mark.slow  # 19 s; the two-worker SIGTERM test above covers the signal path
@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_sigterm_on_one_process_checkpoints_and_exits_75(setup, tmp_path, signum):
  _, config = setup
  model_dir = str(tmp_path / "run")
  log = open(f"{model_dir}.w0.log", "w")
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--gin_file={config}",
       f"--model_dir={model_dir}", "--gin_param=train.num_steps = 100000",
       "--gin_param=train.checkpoint_every_steps = 1000"],
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=log, stderr=subprocess.STDOUT)
  log.close()
  _wait_for_a_logged_step(model_dir, [proc])
  proc.send_signal(signum)
  code = wait_all([proc], timeout=60)[0]
  out = read_log(model_dir, 0)
  assert code == 75, out[-3000:]
  step = latest_step(model_dir)
  assert step is not None and 0 < step < 1000
  assert f"interrupted at step {step}; saved {model_dir}/checkpoints/ckpt-{step}" in out
  assert "Traceback" not in out


@pytest.mark.slow  # ~1-2 min on 2 cores
def test_two_workers_evaluate_on_the_chief_and_keep_the_best_checkpoint(setup, tmp_path):
  """train.eval_every_steps under MultiWorker: only the chief evaluates and writes results.json;
  the best checkpoint (every worker saves a candidate, the chief promotes it) holds the weights of
  the rotation's checkpoint at the best step; no worker scratch directory is left behind."""
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import checkpoints  # pylint: disable=g-import-not-at-top
  _, config = setup
  model_dir = str(tmp_path / "run")
  clf = os.path.join(ROOT, "classifiers", "fmnist_cnn.keras")
  params = ["train.num_steps = 4", "train.checkpoint_every_steps = 2", "train.eval_every_steps = 2",
            "make_eval_fn.num_samples = 64", "make_eval_fn.metrics = ['fid']",
            f"make_eval_fn.classifier_path = '{clf}'",
            f"make_eval_fn.cache_dir = '{tmp_path / 'cache'}'"]
  codes = wait_all(start_cluster(config, model_dir, params))
  assert codes == [0, 0], read_log(model_dir, 0)[-3000:] + read_log(model_dir, 1)[-3000:]
  records = [r for r in evaluation.read_results(model_dir) if not r.get("best")]
  assert [(r["step"], r["metric"]) for r in records] == [(2, "fid_fmnist_cnn"),
                                                         (4, "fid_fmnist_cnn")], records
  best = min(records, key=lambda r: r["value"])
  with open(os.path.join(model_dir, "checkpoints", "best", "best.json")) as f:
    best_json = json.load(f)
  assert best_json["step"] == best["step"] and best_json["value"] == best["value"]
  got = checkpoint_arrays(checkpoints.resolve_checkpoint(model_dir, "best"))
  want = checkpoint_arrays(os.path.join(model_dir, "checkpoints", f"ckpt-{best['step']}"))
  assert set(got) == set(want) and len(got) > 20
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  assert not [n for n in os.listdir(model_dir) if n.startswith("worker_")], os.listdir(model_dir)
  assert "fid" not in read_log(model_dir, 1).lower()  # the worker neither evaluates nor reports
