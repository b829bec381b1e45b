"""In-training evaluation: the best checkpoint by a metric (kept outside the rotation, chosen by
the metric's direction, recorded in results.json, read back with --step=best), the one switch
`train.eval_every_steps` / `--eval_every` with the default classifier, and a classifier that
cannot load stopping the run at start-up."""

import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.metrics import classifiers
from tfadvgan.training import best as best_lib
from tfadvgan.training import checkpoints
from tfadvgan.training import run as loop
from helpers import parse, small_npz, TINY  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(tmp_path, extra=()):
  npz = small_npz(tmp_path)
  parse(["gin_configs/base/dcgan_fmnist.gin"],
        TINY + ["dataset.source = 'npz'", f"dataset.path = '{npz}'",
                "train.keep_checkpoints = 1"] + list(extra))
  return npz


def _results(model_dir):
  with open(os.path.join(model_dir, "eval", "results.json")) as f:
    return json.load(f)


def _fake_eval(values, key, snapshots):
  """An eval_fn returning `values[step - 1]` as `key`, and recording G's weights at each step."""
  def eval_fn(gan, step):
    snapshots[step] = [w.copy() for w in gan.generator.get_weights()]
    return {key: values[step - 1], "other": -values[step - 1]}
  return eval_fn


@pytest.mark.parametrize("metric,key,values,best_step", [
    ("fid", "fid_x", [50.0, 30.0, 40.0], 2),      # lower is better: the 2nd
    ("is", "is_x_mean", [5.0, 3.0, 4.0], 1),      # higher is better: the 1st
])
def test_best_checkpoint_outlives_the_rotation_by_the_metric_direction(tmp_path, metric, key,
                                                                       values, best_step):
  model_dir = str(tmp_path / "run")
  _tiny(tmp_path, ["train.num_steps = 3", f"train.best_metric = '{metric}'"])
  snapshots = {}
  loop.train(model_dir, eval_every_steps=1, eval_fn=_fake_eval(values, key, snapshots))
  # The rotation (keep_checkpoints = 1) holds only the last step; the best is kept apart.
  state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-3"]
  best_dir = checkpoints.best_dir(model_dir)
  assert os.path.basename(tf.train.latest_checkpoint(best_dir)) == f"ckpt-{best_step}"
  assert sorted(n for n in os.listdir(best_dir) if n.startswith("ckpt-")) == [
      f"ckpt-{best_step}.data-00000-of-00001", f"ckpt-{best_step}.index"]
  record = [r for r in _results(model_dir) if r.get("best")]
  assert record == [{"step": best_step, "metric": key, "value": values[best_step - 1],
                     "best": True, "mode": "min" if metric == "fid" else "max",
                     "checkpoint": f"best/ckpt-{best_step}"}]
  # --step=best restores those weights (the live ones were at step 3).
  gan, _, path = loop.restore_run(model_dir, "best")
  assert path == os.path.join(best_dir, f"ckpt-{best_step}")
  assert int(gan.global_step.numpy()) == best_step
  for got, want in zip(gan.generator.get_weights(), snapshots[best_step]):
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(snapshots[3][0], snapshots[best_step][0])


def test_best_checkpoint_survives_a_resume(tmp_path):
  """The best value is read back: a resumed run replaces it only with a better one."""
  model_dir = str(tmp_path / "run")
  values = [50.0, 30.0, 40.0, 35.0, 20.0]
  _tiny(tmp_path, ["train.num_steps = 3"])
  loop.train(model_dir, eval_every_steps=1, eval_fn=_fake_eval(values, "fid", {}))
  _tiny(tmp_path, ["train.num_steps = 4"])
  loop.train(model_dir, eval_every_steps=1, eval_fn=_fake_eval(values, "fid", {}))
  assert os.path.basename(tf.train.latest_checkpoint(checkpoints.best_dir(model_dir))) == "ckpt-2"
  _tiny(tmp_path, ["train.num_steps = 5"])
  loop.train(model_dir, eval_every_steps=1, eval_fn=_fake_eval(values, "fid", {}))
  assert os.path.basename(tf.train.latest_checkpoint(checkpoints.best_dir(model_dir))) == "ckpt-5"
  assert [(r["step"], r["value"]) for r in _results(model_dir) if r.get("best")] == [(5, 20.0)]


def test_metric_names_and_directions():
  keys = ["fid_fmnist_cnn", "is_fmnist_cnn_mean", "is_fmnist_cnn_std", "kid_fmnist_cnn",
          "kid_fmnist_cnn_std"]
  assert [best_lib.result_key(m, keys) for m in ("fid", "is", "kid", "kid_fmnist_cnn_std")] == [
      "fid_fmnist_cnn", "is_fmnist_cnn_mean", "kid_fmnist_cnn", "kid_fmnist_cnn_std"]
  assert best_lib.result_key("fid", ["is_mean"]) is None
  assert [best_lib.direction(k) for k in ("fid", "kid_x", "is_mean", "precision", "recall")] == [
      "min", "min", "max", "max", "max"]
  assert best_lib.direction("answer", "max") == "max"
  with pytest.raises(errors.ConfigError, match="train.best_mode = 'min' or 'max'"):
    best_lib.direction("answer")
  assert [best_lib.better(v, b, m) for v, b, m in [(3.0, None, "min"), (3.0, 2.0, "min"),
                                                  (1.0, 2.0, "min"), (3.0, 2.0, "max"),
                                                  (float("nan"), None, "max")]] == [
      True, False, True, True, False]


def test_step_resolution(tmp_path):
  model_dir = str(tmp_path / "run")
  _tiny(tmp_path)
  loop.train(model_dir)
  assert checkpoints.resolve_checkpoint(model_dir) is None
  assert checkpoints.resolve_checkpoint(model_dir, "2").endswith("checkpoints/ckpt-2")
  with pytest.raises(errors.ConfigError, match="No best checkpoint in .*train.eval_every_steps"):
    checkpoints.resolve_checkpoint(model_dir, "best")
  with pytest.raises(errors.ConfigError, match="--step must be a step number, 'latest' or 'best'"):
    checkpoints.resolve_checkpoint(model_dir, "bset")


def test_default_classifier_follows_the_data_shape():
  kind, path = classifiers.default_classifier((32, 32, 1))
  assert (kind, path) == ("domain", os.path.join(ROOT, "classifiers", "fmnist_cnn.keras"))
  assert os.path.isfile(path)
  assert classifiers.default_classifier((28, 28, 1))[0] == "domain"
  assert classifiers.default_classifier((32, 32, 3)) == ("inception_hub", None)
  assert classifiers.default_classifier((28, 28, 3)) == ("inception_hub", None)


def test_eval_switch_alone_evaluates_with_the_shipped_classifier(tmp_path):
  """`train.eval_every_steps` alone: make_eval_fn's defaults, the run's own model_dir, the shipped
  domain CNN for 32x32x1 data, and a best checkpoint."""
  model_dir = str(tmp_path / "run")
  _tiny(tmp_path, ["train.eval_every_steps = 2", "make_eval_fn.num_samples = 20",
                   f"make_eval_fn.cache_dir = '{tmp_path / 'cache'}'"])
  loop.train(model_dir)
  records = _results(model_dir)
  assert {(r["step"], r["metric"], r["classifier"], r["n"]) for r in records
          if not r.get("best")} == {(2, m, "fmnist_cnn", 20) for m in (
              "fid_fmnist_cnn", "is_fmnist_cnn_mean", "is_fmnist_cnn_std", "kid_fmnist_cnn",
              "kid_fmnist_cnn_std")}
  best = [r for r in records if r.get("best")]
  assert [(r["step"], r["metric"], r["checkpoint"]) for r in best] == [
      (2, "fid_fmnist_cnn", "best/ckpt-2")]
  assert os.path.isfile(os.path.join(checkpoints.best_dir(model_dir), "ckpt-2.index"))


def test_best_metric_not_computed_is_refused_at_start_up(tmp_path):
  model_dir = str(tmp_path / "run")
  _tiny(tmp_path, ["train.eval_every_steps = 2", "make_eval_fn.metrics = ['is']"])
  with pytest.raises(errors.ConfigError, match=r"train.best_metric = 'fid' is not among the "
                                               r"in-training eval results \(is_fmnist_cnn_mean"):
    loop.train(model_dir)
  assert not os.path.exists(model_dir)


def _env():
  """As a user's shell: without the TF_CPP_MIN_LOG_LEVEL that conftest sets."""
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  env.pop("TFADVGAN_TF_CPP_MIN_LOG_LEVEL", None)
  env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
  return env


def _script(name, args, timeout=600):
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", f"{name}.py")] + args,
                        capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=_env(),
                        check=False)


def _train_cli(args):
  return _script("train", args)


def _cli_params(npz, extra=()):
  return [f"--gin_file={os.path.join(ROOT, 'gin_configs/base/dcgan_fmnist.gin')}"] + [
      f"--gin_param={p}" for p in TINY + ["dataset.source = 'npz'", f"dataset.path = '{npz}'"]
      + list(extra)]


def test_classifier_that_cannot_load_stops_train_at_start_up(tmp_path):
  npz = small_npz(tmp_path)
  model_dir = tmp_path / "run"
  proc = _train_cli(_cli_params(npz, ["make_eval_fn.classifier_path = '/nonexistent/c.keras'"])
                    + [f"--model_dir={model_dir}", "--eval_every=1"])
  lines = proc.stderr.splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
  assert lines == ["error: In-training evaluation cannot load its classifier (domain, "
                   "/nonexistent/c.keras): the file does not exist. Set "
                   "make_eval_fn.classifier_path (or make_eval_fn.classifier), or "
                   "train.eval_every_steps = 0."]
  assert not model_dir.exists() and proc.stdout == ""


@pytest.mark.slow
def test_scripts_read_the_best_checkpoint(tmp_path):
  """train.py --eval_every, then sample.py / eval.py / diagnose.py --step=best."""
  npz = small_npz(tmp_path)
  model_dir = str(tmp_path / "run")
  proc = _train_cli(_cli_params(npz, ["train.num_steps = 3", "make_eval_fn.num_samples = 20",
                                      f"make_eval_fn.cache_dir = '{tmp_path / 'cache'}'",
                                      "train.keep_checkpoints = 1"])
                    + [f"--model_dir={model_dir}", "--eval_every=1"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  best = [r for r in _results(model_dir) if r.get("best")]
  assert len(best) == 1 and "  best         " in proc.stderr, proc.stderr  # train's log lines
  path = os.path.join(checkpoints.best_dir(model_dir), f"ckpt-{best[0]['step']}")
  out = tmp_path / "samples"
  proc = _script("sample", [f"--model_dir={model_dir}", "--step=best", "--num=4", f"--out={out}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"restored {path}; wrote 4 samples" in proc.stdout
  proc = _script("eval", [f"--model_dir={model_dir}", "--step=best", "--classifier=domain",
                          "--classifier_path=classifiers/fmnist_cnn.keras", "--num_samples=20",
                          "--metrics=fid", f"--cache_dir={tmp_path / 'cache'}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  again = [r for r in _results(model_dir) if r.get("checkpoint") == f"best/{os.path.basename(path)}"
           and not r.get("best")]
  assert [(r["step"], r["metric"]) for r in again] == [(best[0]["step"], "fid_fmnist_cnn")]
  proc = _script("diagnose", [f"--model_dir={model_dir}", "--step=best", "--num=8",
                              "--batch_size=8", "--which=accuracy", f"--out={tmp_path / 'diag'}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"restored {path}; diagnostics of step {best[0]['step']}" in proc.stdout


@pytest.fixture(autouse=True)
def _clear_gin():
  yield
  gin.clear_config()
