"""The training run end to end: every config trains 2 steps, checkpoints resume exactly, the config
check, the NaN guard, the CLIs and their errors."""

import ast
import functools
import glob
import json
import logging
import os
import re
import shlex
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from helpers import TINY, parse, small_npz, summary_events  # pylint: disable=g-bad-import-order
from tfadvgan import data as data_lib
from tfadvgan import errors
from tfadvgan import gans
from tfadvgan.training import benchmark
from tfadvgan.training import checkpoints
from tfadvgan.training import run as loop
from tfadvgan.training import run_dir as run_dir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"),
                                                recursive=True)
    if os.sep + "common" + os.sep not in p and os.sep + "studies" + os.sep not in p)
FMNIST = "/usr/share/datasets/fashion-mnist"
def _imagenet143_mock(self, *args, **kwargs):
  """16 mock imagenet2012 examples with labels inside ImageNet-143's range (151..293)."""
  del args, kwargs

  def gen():
    for i in range(16):
      yield {"image": np.full((70, 90, 3), 10 * i, np.uint8), "label": 151 + 9 * i,
             "file_name": f"{i}.JPEG"}

  return tf.data.Dataset.from_generator(gen, output_types=self.info.features.dtype,
                                        output_shapes=self.info.features.shape)


@functools.lru_cache(maxsize=None)
def _bindings(config):
  """(scope, configurable name, parameter, value) of every binding of a config (parsed once)."""
  parse([config])
  bound = [(scope, selector.rsplit(".", 1)[-1], k, v)
           for (scope, selector), params in sorted(gin.config._CONFIG.items())  # pylint: disable=protected-access
           for k, v in sorted(params.items())]
  gin.clear_config()
  return tuple(bound)


@functools.lru_cache(maxsize=None)
def _family(config):
  """What a config chooses, as opposed to how much: its gin bindings minus numbers and the dataset.

  Configs of one family (e.g. the eight DAT-DCGAN learning-rate/beta/n_dis grid points, or one
  model on CIFAR-10, CIFAR-100 and CelebA) run the same code in a short training.
  """
  return tuple((scope, name, k, repr(v)) for scope, name, k, v in _bindings(config)
               if name not in ("dataset", "load", "imagenet143")
               and (isinstance(v, bool) or not isinstance(v, (int, float))))


def _cost(config):
  """Cheapest first: 28/32 px and 2-D data, then 64 px, then 128 px."""
  return (("128" in config) * 2 + ("64" in config), config)


def _one_per(key):
  chosen = {}
  for config in sorted(CONFIGS, key=_cost):
    chosen.setdefault(key(config), config)
  return sorted(chosen.values())


# The quick suite: every config parses; one config per family trains 1 step (at n_dis = 1), unless
# the family has only 64/128 px configs (ImageNet-143: 14-16 s each); every set of networks (G's
# and D's builder bindings) is built at every image size the configs use, by training or by a
# build test. `-m slow` trains every config as written.
FAMILIES = _one_per(_family)
QUICK_TRAIN = [c for c in FAMILIES if _cost(c)[0] == 0]
def _image_size(config):
  """28/32 px grey, 32 px colour, 64 px or 128 px (the dataset sizes the configs use)."""
  return _cost(config)[0], "mnist" in config


def _networks(config):
  """The non-width bindings of G's and D's builders: what decides the networks' layers."""
  return tuple((scope, name, k, repr(v)) for scope, name, k, v in _bindings(config)
               if name in ("build_generator", "build_discriminator") and k != "width")


# Datasets of one size differ in their class count, which only sizes the class head. A family that
# does not train (64/128 px only) is always built; otherwise one config per set of networks and
# image size (e.g. Rob-GAN with its two losses builds the same nets).
_UNTRAINED = {c for c in FAMILIES if c not in QUICK_TRAIN}
QUICK_BUILD = sorted(_UNTRAINED | {
    c for c in _one_per(lambda c: (_networks(c), _image_size(c)))
    if c not in QUICK_TRAIN and not any(
        _networks(u) == _networks(c) and _image_size(u) == _image_size(c) for u in _UNTRAINED)})


def _parse_tiny(config, tmp_path):
  parse([config], TINY)
  with gin.unlock_config():
    gin.bind_parameter("dataset.data_dir", str(tmp_path / "tfds"))
    if gin.query_parameter("dataset.source") == "idx" and not os.path.isdir(FMNIST):
      gin.bind_parameter("dataset.source", "npz")
      gin.bind_parameter("dataset.path", small_npz(tmp_path))
  mock = {"num_examples": 16}
  if str(gin.query_parameter("dataset.source")).startswith("imagenet143"):
    # tfds' random mock labels (fixed seed) all fall outside ImageNet-143's classes 151..293.
    mock = {"as_dataset_fn": _imagenet143_mock}
  return tfds.testing.mock_data(**mock)


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_parses(config):
  parse([config], TINY)
  try:
    method = gin.query_parameter("build_gan.method")
  except ValueError:  # not bound: build_gan's default
    method = "gan"
  assert method in gans.METHODS
  gin.clear_config()


@pytest.mark.parametrize("config", QUICK_BUILD)
def test_one_config_per_family_and_image_size_builds(config, tmp_path):
  with _parse_tiny(config, tmp_path):
    source = loop.load_source(fallback_to_ring=False)
  gan = loop.build_gan(source.shape, source.num_classes)
  z = tf.random.stateless_normal((2, gan.generator.latent_dim), seed=(1, 2))
  labels = tf.constant([0, 1]) if gan.conditional else None
  fake = gan.generate(z, labels, training=False)
  assert fake.shape == (2,) + tuple(source.shape)
  logits = gan.discriminate(fake, labels, training=False)["logits"]
  assert logits.shape == (2,) and bool(tf.reduce_all(tf.math.is_finite(logits)))


def test_families_group_only_configs_that_differ_in_numbers():
  assert len(FAMILIES) == len({_family(c) for c in CONFIGS}) < len(CONFIGS)
  assert {_family(c) for c in QUICK_TRAIN} == {_family(c) for c in CONFIGS if _cost(c)[0] == 0}
  assert set(FAMILIES) - set(QUICK_TRAIN) <= set(QUICK_BUILD)  # 64/128 px-only families: built
  quick = set(QUICK_TRAIN) | set(QUICK_BUILD)
  for config in CONFIGS:  # every network at every image size is built by a quick test
    assert any(_networks(q) == _networks(config) and _image_size(q) == _image_size(config)
               for q in quick), config
  assert _family("gin_configs/dat/dat_dcgan_lr1e-3_b0.5_it1_cifar10.gin") == _family(
      "gin_configs/dat/dat_dcgan_lr2e-4_b0.9_it5_cifar10.gin")
  assert _family("gin_configs/robgan/robgan_cifar10.gin") == _family(
      "gin_configs/robgan/robgan_cifar100.gin")
  assert _family("gin_configs/dat/dat_wgan_gp_it1_cifar10.gin") != _family(
      "gin_configs/dat/dat_wgan_lp_it1_cifar10.gin")
  assert _family("gin_configs/base/wgan_gp_cifar10.gin") != _family(
      "gin_configs/dat/dat_wgan_gp_it1_cifar10.gin")


def _train(config, tmp_path, steps, extra=()):
  with _parse_tiny(config, tmp_path):
    with gin.unlock_config():
      gin.bind_parameter("train.num_steps", steps)
      for key, value in extra:
        gin.bind_parameter(key, value)
    gan = loop.train(str(tmp_path / "run"))
  assert int(gan.global_step.numpy()) == steps
  assert os.path.exists(tmp_path / "run" / "operative_config.gin")
  assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith(f"ckpt-{steps}")


@pytest.mark.parametrize("config", QUICK_TRAIN)
def test_one_config_per_family_trains_one_step(config, tmp_path):
  # Numbers do not change a family's code path: one D update, and Rob-GAN's PGD at one step (its
  # 5 eager steps on a ResNet cost ~4 s per config).
  _train(config, tmp_path, 1, [("GAN.n_dis", 1), ("RobGAN.pgd_steps", 1)])


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_trains_two_steps_as_written(config, tmp_path):
  _train(config, tmp_path, 2)


def _npz_run(tmp_path, extra=()):
  parse(["gin_configs/base/dcgan_fmnist.gin"],
        TINY + [f"dataset.source = 'npz'", f"dataset.path = '{small_npz(tmp_path)}'"]
        + list(extra))


def test_resume_continues_at_the_same_step_with_identical_weights(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path, ["train.num_steps = 3", "GAN.ema_decay = 0.9"])
  gan = loop.train(model_dir)
  saved = [w.numpy().copy() for w in gan.weights]
  d_opt_state = [v.numpy().copy() for v in gan.d_optimizer.variables]
  _npz_run(tmp_path, ["train.num_steps = 3", "GAN.ema_decay = 0.9"])
  resumed = loop.train(model_dir)  # already at num_steps: restores and returns
  assert int(resumed.global_step.numpy()) == 3
  for a, b in zip(saved, resumed.weights):
    np.testing.assert_array_equal(a, b.numpy())
  for a, b in zip(d_opt_state, resumed.d_optimizer.variables):
    np.testing.assert_array_equal(a, b.numpy())
  # Extending num_steps is allowed and continues from step 3.
  _npz_run(tmp_path, ["train.num_steps = 5", "GAN.ema_decay = 0.9"])
  longer = loop.train(model_dir)
  assert int(longer.global_step.numpy()) == 5
  assert not np.array_equal(saved[0], longer.weights[0].numpy())


def test_resume_with_a_different_config_fails_loudly(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path)
  loop.train(model_dir)
  _npz_run(tmp_path, ["GAN.loss = 'hinge'"])
  with pytest.raises(errors.ConfigError, match="GAN.loss"):
    loop.train(model_dir)


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path)
  loop.train(model_dir)
  # Every checkpoint (an unreadable latest one alone falls back to the previous one).
  for path in glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.data*")):
    with open(path, "wb") as f:
      f.write(b"garbage")
  _npz_run(tmp_path)
  with pytest.raises(errors.ConfigError, match="corrupt"):
    loop.train(model_dir)


def test_nan_guard_stops_and_keeps_only_finite_checkpoints(tmp_path):
  # A learning rate of 1e30 makes the weights explode within a few steps.
  fresh = str(tmp_path / "fresh")
  _npz_run(tmp_path, ["train.num_steps = 6", "make_optimizer.learning_rate = 1e30",
                      "make_optimizer.name = 'sgd'"])
  with pytest.raises(loop.TrainingDiverged, match="diverged"):
    loop.train(fresh)
  latest = tf.train.latest_checkpoint(os.path.join(fresh, "checkpoints"))
  if latest is not None:  # only finite checkpoints are ever written
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
      value = reader.get_tensor(name)
      if np.issubdtype(np.asarray(value).dtype, np.floating):
        assert np.all(np.isfinite(value)), name


def test_config_parsing_ignores_comments_and_joins_continuations():
  text = ("# Parameters for train:\ntrain.batch_size = 64\nGAN.loss = 'hinge'\n"
          "x.y = [1,\n    2]\n")
  assert checkpoints.parse_bindings(text) == {"train.batch_size": "64", "GAN.loss": "'hinge'",
                                              "x.y": "[1, 2]"}


def test_restore_run_and_sample_cli(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path)
  trained = loop.train(model_dir)
  gan, info, path = loop.restore_run(model_dir)
  assert info["shape"] == [32, 32, 1] and path.endswith("ckpt-2")
  z = tf.random.normal([3, gan.generator.latent_dim])
  np.testing.assert_allclose(gan.sampler()(z, training=False).numpy(),
                             trained.sampler()(z, training=False).numpy(), atol=1e-6)
  out = tmp_path / "samples"
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "sample.py"),
                         f"--model_dir={model_dir}", "--num=10", f"--out={out}"],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  samples = np.load(out / "samples.npz")["images"]
  assert samples.shape == (10, 32, 32, 1) and samples.min() >= -1 and samples.max() <= 1
  assert (out / "grid_000.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--gin_file=gin_configs/nope.gin", "--model_dir=/tmp/x"], "does not exist"),
    (["--gin_file=gin_configs/demo.gin", "--model_dir=/tmp/x", "--gin_param=GAN.loss = 'hing'"],
     "hinge"),
    # The two below (7 s each) run with `-m slow`: test_cli_output checks an unknown binding
    # through the CLI, and the required flag is absl's.
    pytest.param(["--gin_file=gin_configs/demo.gin", "--model_dir=/tmp/x",
                  "--gin_param=nosuch.x = 1"], "nosuch", marks=pytest.mark.slow),
    pytest.param(["--gin_file=gin_configs/demo.gin"], "--model_dir", marks=pytest.mark.slow),
])
def test_train_cli_errors_are_one_clear_message(args, message):
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py")] + args,
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr


def test_benchmark_reports_every_field(tmp_path):
  path = small_npz(tmp_path)
  params = TINY + ["dataset.source = 'npz'", f"dataset.path = '{path}'"]
  configs = [("a", [os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin")], params),
             ("b", [os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin")],
              params + ["GAN.n_dis = 2"])]
  results = benchmark.run(configs, steps=4, warmup=1, chunk=2)
  assert [r["name"] for r in results] == ["a", "b"]
  assert results[0]["ratio_to_first"] == 1.0
  for r in results:
    assert r["steps"] == 4 and r["min_ms_per_step"] <= r["median_ms_per_step"] <= r[
        "max_ms_per_step"]
    np.testing.assert_allclose(r["images_per_sec"],
                               4 * r["n_dis"] * 1000 / r["median_ms_per_step"], rtol=1e-6)
  assert results[1]["n_dis"] == 2
  json.dumps(results)


def test_tensorboard_logs_losses_lr_throughput_and_samples(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path, ["train.num_steps = 4", "train.log_every_steps = 2",
                      "train.sample_every_steps = 2", "D/make_optimizer.learning_rate = 5e-5",
                      "train.diagnose_every_steps = 4"])
  loop.train(model_dir)
  tags = summary_events(os.path.join(model_dir, "train"))
  for tag in ("diag/d_acc_real", "diag/d_acc_real_fgsm", "diag/grad_l1", "diag/wdist"):
    assert tag in tags and [s for s, _ in tags[tag]] == [4], (tag, sorted(tags))
  assert "diag/xi_fake" not in tags  # attack success is logged for DAT runs only
  for tag in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/wdist",
              "train/d_grad_norm", "train/g_grad_norm", "lr/discriminator", "lr/generator",
              "perf/ms_per_step", "perf/images_per_sec", "samples"):
    assert tag in tags, (tag, sorted(tags))
  assert [s for s, _ in tags["train/d_loss"]] == [2, 4]
  lr_d = tf.make_ndarray(tags["lr/discriminator"][0][1].tensor)
  lr_g = tf.make_ndarray(tags["lr/generator"][0][1].tensor)
  np.testing.assert_allclose([lr_d, lr_g], [5e-5, 2e-4], rtol=1e-6)
  assert sorted(os.listdir(os.path.join(model_dir, "samples"))) == [
      "samples_00000002.png", "samples_00000004.png"]


def test_periodic_eval_hook_and_steps_per_execution(tmp_path):
  model_dir = str(tmp_path / "run")
  calls = []

  def eval_fn(gan, step):
    calls.append(step)
    return {"answer": 42.0}

  _npz_run(tmp_path, ["train.num_steps = 4", "train.checkpoint_every_steps = 2",
                      "build_gan.steps_per_execution = 2", "build_gan.run_eagerly = False",
                      "build_gan.jit_compile = False"])
  gan = loop.train(model_dir, eval_every_steps=2, eval_fn=eval_fn)
  assert int(gan.global_step.numpy()) == 4
  assert calls == [2, 4]
  state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4"]
  tags = summary_events(os.path.join(model_dir, "train"))
  assert [s for s, _ in tags["eval/answer"]] == [2, 4]


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "run"
  params = TINY + [f"dataset.source = 'npz'", f"dataset.path = '{small_npz(tmp_path)}'",
                   "train.num_steps = 100000", "train.checkpoint_every_steps = 100000",
                   "train.log_every_steps = 1", "train.sample_every_steps = 100000"]
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
       "--gin_file=" + os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin"),
       f"--model_dir={model_dir}"] + [f"--gin_param={p}" for p in params],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while time.time() < deadline and not glob.glob(str(model_dir / "train" / "events*")):
    time.sleep(0.5)
  time.sleep(3)  # usually a few steps in; on a slow machine still compiling (stops after step 1)
  proc.send_signal(signal.SIGINT)
  try:
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:  # never leave a 100000-step run behind
      proc.kill()
      proc.communicate()
  assert proc.returncode == 75, err[-3000:]  # stopped early with a checkpoint: rerun to continue
  assert "[tfadvgan] interrupted at step" in err  # the library's log lines go to stderr
  latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
  assert latest is not None and int(latest.rsplit("-", 1)[1]) > 0
  assert "Traceback" not in err


def test_conditional_run_with_projection_head(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path, ["build_gan.conditional = True", "build_discriminator.head = 'projection'"])
  gan = loop.train(model_dir)
  assert gan.conditional and gan.generator.num_classes == 10
  info = run_dir_lib.read_run_info(model_dir)
  assert info["conditional"] and info["num_classes"] == 10
  # Conditional sampling: the label changes the sample (conditional BN), shapes are per class.
  z = tf.zeros([2, gan.generator.latent_dim]) + 0.3
  out = gan.sampler()(z, tf.constant([0, 7]), training=False).numpy()
  assert out.shape == (2, 32, 32, 1) and not np.allclose(out[0], out[1])


def test_conditional_without_labels_is_refused(tmp_path):
  path = str(tmp_path / "nolabels.npz")
  np.savez(path, images=np.zeros((16, 32, 32, 1), np.uint8))
  parse(["gin_configs/base/dcgan_fmnist.gin"],
        TINY + ["dataset.source = 'npz'", f"dataset.path = '{path}'",
                "build_gan.conditional = True"])
  with pytest.raises(errors.ConfigError, match="no labels"):
    loop.train(str(tmp_path / "run"))


def test_dat_run_logs_attack_success(tmp_path):
  model_dir = str(tmp_path / "run")
  _npz_run(tmp_path, ["include 'common/dat.gin'", "train.diagnose_every_steps = 2"])
  loop.train(model_dir)
  tags = summary_events(os.path.join(model_dir, "train"))
  for tag in ("diag/xi_fake", "diag/xi_real", "train/dat_adv_loss", "train/wdist"):
    assert tag in tags, (tag, sorted(tags))
  xi = tf.make_ndarray(tags["diag/xi_fake"][0][1].tensor)
  assert 0 <= xi <= 50


@pytest.mark.parametrize("study", sorted(glob.glob(os.path.join(ROOT, "gin_configs", "studies",
                                                               "*.gin"))))
def test_study_configs_name_existing_configs(study, tmp_path):
  """Each study variant's gin files exist and parse with its params (the dry run's commands;
  in-process, as `study.py --dry_run` runs it: a subprocess would spend 6 s importing TF)."""
  from tfadvgan.cli import study as study_cli  # pylint: disable=g-import-not-at-top
  clf = tmp_path / "clf.keras"
  clf.write_bytes(b"x")
  parse([study], [f"study.classifier_path = '{clf}'"])
  _, commands = study_cli.study(str(tmp_path / "out"), dry_run=True)
  for line in commands:
    if "train.py" in line:
      files = [a.split("=", 1)[1] for a in line.split() if a.startswith("--gin_file=")]
      assert files and all(os.path.exists(f) for f in files), line
      parse([os.path.relpath(f, ROOT) for f in files], [])
  parse([study], [f"study.classifier_path = '{clf}'"])
  seeds = gin.query_parameter("study.seeds")
  variants = gin.query_parameter("study.variants")
  try:
    finetunes = gin.query_parameter("study.finetunes")
  except ValueError:
    finetunes = []
  assert len(variants) * len(seeds) >= 2
  assert sum("train.py" in l for l in commands) == len(variants) * len(seeds)
  assert sum("finetune.py" in l for l in commands) == len(finetunes) * len(seeds)


def _finished_study_run(run):
  """A run dir as a study leaves it: eval results, diagnostics JSONs, wdist events."""
  (run / "eval").mkdir(parents=True)
  (run / "diagnostics").mkdir()
  # Training's curve (n = 20) and eval.py's final record (n = 50) at the last step.
  (run / "eval" / "results.json").write_text(json.dumps(
      [{"step": 5, "metric": "fid_x", "value": 9.0, "n": 20},
       {"step": 10, "metric": "fid_x", "value": 7.0, "n": 20},
       {"step": 10, "metric": "fid_x", "value": 4.0, "n": 50},
       {"step": 10, "metric": "is_x", "value": 2.0, "n": 50},
       {"step": 5, "metric": "precision_x", "value": 0.5, "n": 50},
       {"step": 10, "metric": "precision_x", "value": 0.625, "n": 50},
       {"step": 10, "metric": "recall_x", "value": 0.375, "n": 50}]))
  (run / "diagnostics" / "diagnostics_step9.json").write_text(json.dumps({"step": 9}))
  (run / "diagnostics" / "diagnostics_step10.json").write_text(json.dumps(
      {"step": 10, "accuracy": {"real": {"0": 0.75, "0.5": 0.25}},
       "gradients": {"l1": 3.5, "sparsity": 0.125}, "dat": {"xi_fake": 4.0, "xi_real": 6.0, "first_order": {
           "real": {"relative_error_median": 0.5, "overshoot_fraction": 0.25}}},
       "class_pgd": {"accuracy": {"0": 0.9, "0.02": 0.6}},
       "modes": {"modes_covered": 7, "high_quality_fraction": 0.5},
       "class_pgd_classifier": {"accuracy": {"0.02": 0.7}},
       "generalization": {"discriminator": {
           "train": {"llv_mean": 0.25}, "test": {"llv_mean": 0.75},
           "accuracy_gap": {"0": 0.125, "0.02": 0.0625}}}}))
  writer = tf.summary.create_file_writer(str(run / "train"))
  values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
  with writer.as_default():
    for step, v in enumerate(values, start=1):
      tf.summary.scalar("train/wdist", v, step=step)
  writer.close()


def test_study_collects_fid_diagnostics_and_wdist_variance(tmp_path):
  """study.collect reads eval/results.json, the last diagnostics JSON and the wdist events."""
  from tfadvgan.cli import study as study_cli  # pylint: disable=g-import-not-at-top
  run = tmp_path / "run"
  _finished_study_run(run)
  got = study_cli.collect(str(run), "0.5", curve_num_samples=20)
  assert got["fid_x"] == 4.0 and "is_x" not in got and got["steps"] == 10  # step 10 > step 9
  assert got["precision_x"] == 0.625 and got["recall_x"] == 0.375  # the last step's
  assert got["curve"] == [[5, 9.0], [10, 7.0]]
  assert "curve" not in study_cli.collect(str(run), "0.5")
  assert got["d_acc_real_clean"] == 0.75 and got["d_acc_real_fgsm_0.5"] == 0.25
  assert got["grad_l1"] == 3.5 and got["grad_sparsity"] == 0.125
  assert got["modes_covered"] == 7 and got["high_quality_fraction"] == 0.5
  assert got["ref_acc_pgd_0.02"] == 0.7 and got["llv_train"] == 0.25 and got["llv_test"] == 0.75
  assert got["acc_gap_pgd_0"] == 0.125 and got["acc_gap_pgd_0.02"] == 0.0625
  assert got["xi_fake"] == 4.0 and got["xi_real"] == 6.0
  assert got["first_order_error_real"] == 0.5 and got["overshoot_real"] == 0.25
  assert got["class_acc_pgd_0"] == 0.9 and got["class_acc_pgd_0.02"] == 0.6
  assert got["wdist_var_last20"] == pytest.approx(np.var([9.0, 10.0]))  # steps > 0.8 * 10
  text = study_cli.table([{"variant": "v", "per_seed": [got, dict(got, fid_x=6.0)]}], [0, 1])
  assert "| v |" in text and "5 ± 1" in text and "curve" not in text
  # A fine-tuned run (scripts/finetune.py) has no training events: collected, wdist None.
  tf.io.gfile.rmtree(str(run / "train"))
  tuned = study_cli.collect(str(run), "0.5")
  assert tuned["wdist_var_last20"] is None and tuned["class_acc_pgd_0.02"] == 0.6


def test_study_resumes_a_finished_finetune_without_rerunning_it(tmp_path, monkeypatch):
  """finetune.py refuses a non-empty --out_dir: a fine-tune whose finetune.json exists is listed
  in the commands but not run again; its diagnose step (and everything unfinished) runs."""
  from tfadvgan.cli import study as study_cli  # pylint: disable=g-import-not-at-top
  ran = []
  monkeypatch.setattr(study_cli, "_run",
                      lambda cmd, log, dry_run: ran.append(cmd) or study_cli._printable(cmd))
  monkeypatch.setattr(study_cli, "collect", lambda *args, **kwargs: {"n": 1.0})
  out = tmp_path / "out"
  (out / "gan" / "seed0").mkdir(parents=True)
  (out / "gan" / "seed0" / "study_done.json").write_text(json.dumps({"n": 2.0}))
  (out / "ft" / "seed0").mkdir(parents=True)
  (out / "ft" / "seed0" / "finetune.json").write_text("{}")
  rows, commands = study_cli.run_study(
      str(out), [("gan", ["x.gin"], [])], seeds=[0, 1],
      finetunes=[("ft", "gan", ["finetune_classifier.fake_weight = 0.0"])])
  model_dir = lambda cmd: next(a for a in cmd if a.startswith("--model_dir=")).split("/")[-2]  # noqa: E731
  scripts = [os.path.basename(cmd[1]) + ":" + model_dir(cmd) for cmd in ran]
  assert scripts == ["diagnose.py:ft",  # seed 0: training done, fine-tune done, diagnose not
                     "train.py:gan", "diagnose.py:gan", "finetune.py:gan", "diagnose.py:ft"]
  assert sum("finetune.py" in c for c in commands) == 2  # both seeds' fine-tunes are listed
  assert [[s["n"] for s in r["per_seed"]] for r in rows] == [[2.0, 1.0], [1.0, 1.0]]


def test_study_collects_in_a_fresh_process_after_the_config_is_locked(tmp_path):
  """What study.py does: parse (and lock) the study config, then collect finished runs. collect
  once imported a module that registers a gin configurable, which fails after the lock (the
  AS-GAN study stopped on it); in this test process everything is imported already, so only a
  fresh process shows it."""
  run = tmp_path / "run"
  _finished_study_run(run)
  code = ("import json, sys; from tfadvgan.cli import study as s; "
          "s.parse_study(sys.argv[1], []); print(json.dumps(s.collect(sys.argv[2], '0.5')))")
  proc = subprocess.run([sys.executable, "-c", code,
                         os.path.join(ROOT, "gin_configs/studies/as_gan_fmnist.gin"), str(run)],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  assert got["wdist_var_last20"] == pytest.approx(np.var([9.0, 10.0]))
  assert got["fid_x"] == 4.0 and got["grad_l1"] == 3.5


def test_study_runs_seeds_outer_and_skips_fid_without_a_classifier(tmp_path):
  """A study stopped early has every variant at the same seeds; no classifier, no eval.py."""
  from tfadvgan.cli import study as study_cli  # pylint: disable=g-import-not-at-top
  variants = [("a", ["base/gan_ring.gin"], []), ("b", ["base/gan_grid.gin"], [])]
  _, commands = study_cli.study(str(tmp_path), variants=variants, seeds=[0, 1],
                                classifier_path=None, diagnose_which=["modes"], dry_run=True)
  runs = [re.search(r"--model_dir=\S*/(\w+)/seed(\d)", c).groups() for c in commands]
  assert runs == [("a", "0"), ("a", "0"), ("b", "0"), ("b", "0"),
                  ("a", "1"), ("a", "1"), ("b", "1"), ("b", "1")]
  assert not any("eval.py" in c for c in commands)
  # Fine-tuning stages follow each seed's variants and read that seed's run of their variant.
  _, commands = study_cli.study(str(tmp_path), variants=variants, seeds=[0, 1],
                                classifier_path=None, diagnose_which=["class_pgd"],
                                diagnose_flags=["--class_epsilons=0,0.1"],
                                finetunes=[("ft", "b", ["finetune_classifier.fake_weight = 0.0"])],
                                dry_run=True)
  finetune = [c for c in commands if "finetune.py" in c]
  assert len(finetune) == 2 and commands.index(finetune[0]) < commands.index(
      next(c for c in commands if "seed1" in c))
  assert f"--model_dir={tmp_path}/b/seed1" in finetune[1]
  assert f"--out_dir={tmp_path}/ft/seed1" in finetune[1]
  assert "'--gin_param=finetune_classifier.fake_weight = 0.0'" in finetune[1]
  assert all("--class_epsilons=0,0.1" in c for c in commands if "diagnose.py" in c)
  # A resumed study skips finished runs but still lists their commands (study.md's record).
  for variant in ("a", "b"):
    for seed in (0, 1):
      (tmp_path / variant / f"seed{seed}").mkdir(parents=True, exist_ok=True)
      (tmp_path / variant / f"seed{seed}" / "study_done.json").write_text('{"steps": 7}')
  rows, resumed = study_cli.study(str(tmp_path), variants=variants, seeds=[0, 1],
                                  classifier_path=None, diagnose_which=["modes"])
  _, dry = study_cli.study(str(tmp_path), variants=variants, seeds=[0, 1],
                           classifier_path=None, diagnose_which=["modes"], dry_run=True)
  assert resumed == dry and len(resumed) == 8
  assert [len(r["per_seed"]) for r in rows] == [2, 2] and rows[0]["per_seed"][0]["steps"] == 7
  with pytest.raises(errors.ConfigError, match="not in study.variants"):
    study_cli.study(str(tmp_path), variants=variants, finetunes=[("ft", "zz", [])],
                    classifier_path=None, dry_run=True)
  with pytest.raises(errors.ConfigError, match="curve_every_steps needs"):
    study_cli.study(str(tmp_path), variants=variants, classifier_path=None, curve_every_steps=5,
                    dry_run=True)


def test_study_curve_bindings_write_a_curve_during_training(tmp_path):
  """The dry run's train command evaluates every curve_every_steps into the run's results.json."""
  from tfadvgan.cli import study as study_cli  # pylint: disable=g-import-not-at-top
  clf = tmp_path / "clf.keras"
  clf.write_bytes(b"x")
  _, commands = study_cli.study(str(tmp_path / "out"), variants=[("a", ["demo.gin"], [])],
                                seeds=[3], classifier_path=str(clf), curve_every_steps=250,
                                curve_num_samples=700, dry_run=True)
  train = shlex.split(commands[0])  # the printed command is what a shell would run
  run_dir = str(tmp_path / "out" / "a" / "seed3")
  for binding in ("train.eval_every_steps = 250", "train.eval_fn = @make_eval_fn()",
                  f"make_eval_fn.model_dir = '{run_dir}'", "make_eval_fn.num_samples = 700",
                  f"make_eval_fn.classifier_path = '{clf}'"):
    assert f"--gin_param={binding}" in train, (binding, train)
  assert "--num_samples=5000" in commands[1]  # eval.py's final FID is a separate record


def test_study_figures(tmp_path):
  """The FID band is the seeds' mean ± std on shared steps; both PNGs are written and show it."""
  from tfadvgan.cli import study as study_cli  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import figures  # pylint: disable=g-import-not-at-top
  curves = [[[100, 10.0], [200, 6.0], [300, 5.0]], [[100, 14.0], [200, 8.0]]]
  steps, mean, std = figures.curve_band(curves)
  np.testing.assert_array_equal(steps, [100, 200])
  np.testing.assert_allclose(mean, [12.0, 7.0])
  np.testing.assert_allclose(std, [2.0, 1.0])
  diag = tmp_path / "v" / "seed0" / "diagnostics"
  diag.mkdir(parents=True)
  rng = np.random.default_rng(4)
  np.savez(diag / "mode_samples_step10.npz", samples=rng.normal(size=(50, 2)),
           centres=np.zeros((1, 2)), std=np.float32(0.1))
  rows = [{"variant": "v", "per_seed": [{"curve": curves[0]}, {"curve": curves[1]}]}]
  written = study_cli.draw_figures(str(tmp_path), rows, [0, 1])
  assert written == [str(tmp_path / "fid_curves.png"), str(tmp_path / "mode_samples.png")]
  # Accuracy under PGD against eps: the band is over the seeds, on the eps both have, by value.
  per_seed = [{"class_acc_pgd_0": 0.9, "class_acc_pgd_0.08": 0.3, "class_acc_pgd_0.02": 0.7,
               "acc_gap_pgd_0": 0.05, "ref_acc_pgd_0": 0.95},
              {"class_acc_pgd_0": 0.8, "class_acc_pgd_0.02": 0.5, "acc_gap_pgd_0": 0.01}]
  eps, mean, std = figures.epsilon_band(per_seed, "class_acc_pgd_")
  np.testing.assert_array_equal(eps, [0.0, 0.02])
  np.testing.assert_allclose(mean, [0.85, 0.6])
  np.testing.assert_allclose(std, [0.05, 0.1])
  written += study_cli.draw_figures(str(tmp_path / "robust"), [
      {"variant": "lam0", "per_seed": per_seed}, {"variant": "x", "per_seed": [{"fid": 1.0}]}],
      [0, 1])
  assert written[-1] == str(tmp_path / "robust" / "robustness.png")
  for path in written:
    png = tf.io.decode_png(open(path, "rb").read()).numpy()
    assert png.shape[0] > 100 and png.shape[1] > 100
    assert np.unique(png.reshape(-1, png.shape[-1]), axis=0).shape[0] > 20  # drawn, not blank
  assert study_cli._latest(["diagnostics_step999.json", "diagnostics_step1000.json", "x.json"],
                           "diagnostics_step") == "diagnostics_step1000.json"


def test_wall_time_budget_stops_early_and_checkpoints(tmp_path, caplog):
  """train.max_seconds stops after the first step past the budget and saves that step."""
  caplog.set_level(logging.INFO, logger="absl")
  model_dir = str(tmp_path / "run")
  # A budget already exceeded once the first step (which compiles) has run: stops at step 1.
  _npz_run(tmp_path, ["train.num_steps = 50", "train.checkpoint_every_steps = 100",
                      "train.max_seconds = 1e-6"])
  gan = loop.train(model_dir)
  assert int(gan.global_step.numpy()) == 1
  assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-1")
  assert any("wall-time budget" in r.getMessage() for r in caplog.records)
  # A generous budget does not cut the run short.
  _npz_run(tmp_path, ["train.num_steps = 3", "train.max_seconds = 3600"])
  assert int(loop.train(str(tmp_path / "run2")).global_step.numpy()) == 3
  _npz_run(tmp_path, ["train.max_seconds = -5"])
  with pytest.raises(errors.ConfigError, match="max_seconds"):
    loop.train(str(tmp_path / "run3"))


RING_E2E = ["train.batch_size = 8", "build_generator.width = 8", "build_discriminator.width = 8",
            "dataset.num_examples = 256", "train.diagnose_every_steps = 0"]


def _ms_windows(run):
  """{step: perf/ms_per_step} read from a run's events with TF's own iterator."""
  windows = {}
  for name in os.listdir(os.path.join(run, "train")):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(run, "train", name)):
      for value in event.summary.value:
        if value.tag == "perf/ms_per_step":
          windows[event.step] = float(tf.make_ndarray(value.tensor))
  return windows


def test_benchmark_end_to_end_reads_the_training_windows_after_warmup(tmp_path):
  """`benchmark.end_to_end` trains with train.py's loop and takes the median of the logged
  perf/ms_per_step windows past the warm-up (read here independently from the events)."""
  run = str(tmp_path / "e2e")
  got = benchmark.end_to_end([os.path.join(ROOT, "gin_configs/base/gan_ring.gin")], RING_E2E,
                             steps=6, warmup=2, chunk=2, model_dir=run)
  windows = _ms_windows(run)
  assert sorted(windows) == [2, 4, 6, 8]
  assert got["end_to_end_windows"] == 3
  assert got["end_to_end_ms_per_step"] == pytest.approx(np.median([windows[s] for s in (4, 6, 8)]))
  with pytest.raises(errors.ConfigError, match="at least --chunk"):
    benchmark.end_to_end([], [], steps=1, warmup=2, chunk=2)


@pytest.mark.slow  # 25 s; CI's benchmark check (.ci/run) runs two rounds on every push
def test_benchmark_end_to_end_in_interleaved_rounds(tmp_path):
  """rounds = 2: training resumes to 2 x (warmup + steps); each round's windows are those past its
  own warm-up (read here from the events), and the ratio is against the interleaved isolated
  calls."""
  run = str(tmp_path / "e2e")
  got = benchmark.end_to_end([os.path.join(ROOT, "gin_configs/base/gan_ring.gin")], RING_E2E,
                             steps=4, warmup=2, chunk=2, model_dir=run, rounds=2)
  windows = _ms_windows(run)
  assert sorted(windows) == [2, 4, 6, 8, 10, 12]  # round 2 resumed at 6
  counted = [windows[s] for s in (4, 6, 10, 12)]  # past each round's warm-up (2 and 8)
  assert got["end_to_end_windows"] == 4
  assert got["end_to_end_ms_per_step"] == pytest.approx(np.median(counted))
  assert got["end_to_end_ratio"] == pytest.approx(got["end_to_end_ms_per_step"]
                                                  / got["isolated_ms_per_step"])
  assert len(got["end_to_end_round_ratios"]) == 2
  with pytest.raises(errors.ConfigError, match="rounds"):
    benchmark.end_to_end([], [], steps=2, warmup=2, chunk=2, rounds=2, profile=True)


def test_benchmark_end_to_end_cached_input_and_profile():
  """The cached input is the pipeline's first batch, repeated; end_to_end puts the pipeline
  function back afterwards; the profile reports the host's share per step."""
  source = data_lib.from_arrays(np.random.default_rng(3).normal(size=(64, 2)).astype(np.float32),
                                np.zeros(64, np.int64))
  make = lambda: data_lib.make_train_dataset(source, batch_size=8, seed=5)  # noqa: E731
  cached = iter(benchmark.first_batch_repeated(data_lib.make_train_dataset)(source, batch_size=8,
                                                                            seed=5))
  real = iter(make())
  first, second, real_first, real_second = next(cached), next(cached), next(real), next(real)
  for key in ("images", "z_d", "z_g"):
    np.testing.assert_array_equal(first[key], second[key])
    np.testing.assert_array_equal(first[key], real_first[key])
  assert not np.array_equal(real_first["z_g"], real_second["z_g"])
  pipeline = data_lib.make_train_dataset
  got = benchmark.end_to_end([os.path.join(ROOT, "gin_configs/base/gan_ring.gin")], RING_E2E,
                             steps=4, warmup=2, chunk=2, input_pipeline="cached", profile=True)
  assert data_lib.make_train_dataset is pipeline
  assert got["profile_compiled_s"] > 0
  assert 0 < got["profile_callbacks_ms_per_step"] <= got["profile_host_ms_per_step"]
  with pytest.raises(errors.ConfigError, match="'real' or 'cached'"):
    benchmark.end_to_end([], [], steps=2, warmup=2, chunk=2, input_pipeline="cache")
