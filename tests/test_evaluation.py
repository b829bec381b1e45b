"""Evaluation pipeline: evaluate / make_eval_fn / results.json, scripts/eval.py and
scripts/train_classifier.py, on a 2-step run and a tiny domain classifier."""

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan import rng
from tfadvgan.gans import sampling
from tfadvgan.metrics import classifiers
from tfadvgan.metrics import domain_classifier as dc
from tfadvgan.metrics import evaluation
from tfadvgan.metrics import manifold
from tfadvgan.metrics import sample_quality
from tfadvgan.training import run as loop
from helpers import parse, small_npz, TINY  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "tiny_cnn"
N = 20  # generated samples (>= 10 for the 10 IS splits)
CLASSIFIER_NAMES = [f"fid_{NAME}", f"is_{NAME}_mean", f"is_{NAME}_std", f"kid_{NAME}",
                    f"kid_{NAME}_std"]


def _npz_params(npz):
  return TINY + ["dataset.source = 'npz'", f"dataset.path = '{npz}'"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  return small_npz(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run_dir(npz, tmp_path_factory):
  """A 2-step run with an EMA generator and checkpoints ckpt-1, ckpt-2."""
  model_dir = str(tmp_path_factory.mktemp("runs") / "run")
  # A large learning rate so that G and its EMA (decay 0.7) differ clearly after 2 steps.
  parse(["gin_configs/base/dcgan_fmnist.gin"],
        _npz_params(npz) + ["GAN.ema_decay = 0.7", "make_optimizer.learning_rate = 0.05"])
  loop.train(model_dir)
  gin.clear_config()
  return model_dir


@pytest.fixture(scope="module")
def clf_path(npz, tmp_path_factory):
  """A domain classifier named 'tiny_cnn', trained for one epoch on the tiny npz."""
  with np.load(npz) as f:
    images, labels = f["images"], f["labels"]
  source = data_lib.from_arrays(images, labels)
  train = source.images.batch(16)
  model, _ = dc.train_domain_classifier(train, None, epochs=1, num_classes=10, width=4,
                                        feature_dim=16)
  path = str(tmp_path_factory.mktemp("clf") / "tiny.keras")
  dc.save_domain_classifier(model, path, NAME)
  return path


def _real_source(npz):
  with np.load(npz) as f:
    return data_lib.from_arrays(f["images"], f["labels"])


def _copy(run_dir, tmp_path):
  dst = str(tmp_path / "run")
  shutil.copytree(run_dir, dst)
  return dst


def _eval_cli(args, timeout=300):
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "eval.py")] + args,
                        capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def _records(model_dir):
  with open(os.path.join(model_dir, "eval", "results.json")) as f:
    return json.load(f)


def test_metric_names_carry_the_classifier_name():
  assert evaluation.result_names("inception") == ["fid", "is_mean", "is_std", "kid", "kid_std"]
  assert evaluation.result_names(NAME) == CLASSIFIER_NAMES
  assert evaluation.result_names("keras_inception_v3", ("fid",)) == ["fid_keras_inception_v3"]
  with pytest.raises(evaluation.ConfigError, match="subset"):
    evaluation.result_names(NAME, ("fid", "precision"))


def test_eval_cli_end_to_end_matches_independent_fid(run_dir, clf_path, npz, tmp_path):
  model_dir = _copy(run_dir, tmp_path)
  cache = str(tmp_path / "cache")
  proc = _eval_cli([f"--model_dir={model_dir}", "--classifier=domain",
                    f"--classifier_path={clf_path}", f"--num_samples={N}",
                    f"--cache_dir={cache}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "ckpt-2" in proc.stdout and f"fid_{NAME}" in proc.stdout  # the printed table
  records = _records(model_dir)
  assert sorted(r["metric"] for r in records) == sorted(CLASSIFIER_NAMES)
  for r in records:
    assert {"step", "metric", "value", "classifier", "n", "checkpoint"} <= set(r)
    assert (r["step"], r["classifier"], r["n"], r["checkpoint"]) == (2, NAME, N, "ckpt-2")
    assert r["reference_split"] == "train" and r["n_reference"] == N
  values = {r["metric"]: r["value"] for r in records}
  assert values[f"kid_{NAME}_std"] is None  # one KID block: NaN, stored as null

  # Independent recomputation: same seed -> same samples; reference = first N real examples.
  gan, _, path = loop.restore_run(model_dir)
  assert path.endswith("ckpt-2")
  samples, _ = evaluation.generate(gan, N, seed=0)
  clf = classifiers.get_classifier("domain", path=clf_path)
  fake_f, fake_l = clf.features_and_logits(samples)
  real_f = clf.features(_real_source(npz).images.take(N))
  np.testing.assert_allclose(values[f"fid_{NAME}"],
                             sample_quality.fid_from_activations(real_f, fake_f), rtol=1e-5)
  np.testing.assert_allclose(values[f"is_{NAME}_mean"],
                             sample_quality.inception_score_from_logits(fake_l)[0], rtol=1e-5)
  np.testing.assert_allclose(values[f"kid_{NAME}"],
                             sample_quality.kid_from_activations(real_f, fake_f)[0], rtol=1e-4,
                             atol=1e-7)
  # The cached reference is exactly those real features.
  (cached,) = glob.glob(os.path.join(cache, "*.npz"))
  np.testing.assert_allclose(sample_quality.ActivationStats.load(cached).activations, real_f,
                             atol=1e-6)
  # TensorBoard scalars under DIR/eval.
  tags = set()
  for events in glob.glob(os.path.join(model_dir, "eval", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(events):
      tags.update(v.tag for v in event.summary.value)
  assert f"eval/fid_{NAME}" in tags


def test_eval_all_evaluates_each_kept_checkpoint_once(run_dir, clf_path, tmp_path):
  model_dir = _copy(run_dir, tmp_path)
  extra = dict(reference_split="train", n_reference=N)
  # Step 1 is already in results.json (sentinel values): --all must only evaluate step 2.
  evaluation.append_results(model_dir, 1, {n: -1.0 for n in CLASSIFIER_NAMES}, NAME, N,
                            checkpoint="ckpt-1", extra=extra, summaries=False)
  proc = _eval_cli([f"--model_dir={model_dir}", "--all", "--classifier=domain",
                    f"--classifier_path={clf_path}", f"--num_samples={N}",
                    f"--cache_dir={tmp_path / 'cache'}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "ckpt-2" in proc.stdout and "ckpt-1" not in proc.stdout
  records = _records(model_dir)
  keys = [(r["step"], r["metric"]) for r in records]
  assert sorted(keys) == sorted((s, m) for s in (1, 2) for m in CLASSIFIER_NAMES)
  assert all(r["value"] == -1.0 for r in records if r["step"] == 1)
  assert all(r["value"] != -1.0 for r in records if r["step"] == 2)
  assert evaluation.evaluated_steps(model_dir, NAME, N, CLASSIFIER_NAMES, extra) == [1, 2]
  # Another classifier / sample count has not been evaluated.
  assert evaluation.evaluated_steps(model_dir, NAME, 2 * N, CLASSIFIER_NAMES, extra) == []


def test_eval_continuous_evaluates_new_checkpoints_and_stops_at_num_steps(run_dir, clf_path,
                                                                           tmp_path):
  model_dir = _copy(run_dir, tmp_path)
  # The run is finished (ckpt-2 = train.num_steps): evaluate the latest once, then stop at once
  # rather than waiting for --timeout_secs.
  proc = _eval_cli([f"--model_dir={model_dir}", "--continuous", "--timeout_secs=120",
                    "--classifier=domain", f"--classifier_path={clf_path}",
                    f"--num_samples={N}", "--metrics=fid", f"--cache_dir={tmp_path / 'c'}"],
                   timeout=100)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert [(r["step"], r["metric"]) for r in _records(model_dir)] == [(2, f"fid_{NAME}")]


@pytest.mark.parametrize("args, expected", [
    (["--classifier=domain"], ["--classifier_path"]),
    (["--step=7", "--classifier=domain", "--classifier_path=unused.keras"],
     ["step 7", "available: ckpt-1, ckpt-2"]),
])
def test_eval_cli_errors_are_one_message_with_exit_2(run_dir, args, expected):
  proc = _eval_cli([f"--model_dir={run_dir}"] + args)
  assert proc.returncode == 2, proc.stderr[-3000:]
  error_lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(error_lines) == 1, proc.stderr[-3000:]
  for text in expected:
    assert text in error_lines[0]
  assert "Traceback" not in proc.stderr and "In call to configurable" not in proc.stderr


def test_reference_cache_reused_and_keyed_by_n_and_split(run_dir, clf_path, npz, tmp_path,
                                                         monkeypatch):
  gan, _, _ = loop.restore_run(run_dir)
  clf = classifiers.get_classifier("domain", path=clf_path)
  source = _real_source(npz)
  cache = str(tmp_path / "cache")
  computed = []
  original = sample_quality.load_or_compute_reference

  def counting(cache_dir, key, compute_fn, **kwargs):
    return original(cache_dir, key, lambda: computed.append(key["n"]) or compute_fn(), **kwargs)

  monkeypatch.setattr(sample_quality, "load_or_compute_reference", counting)
  train_fields = {"dataset": "tiny", "split": "train"}

  def run(n, fields=train_fields, src=source):
    return evaluation.evaluate(gan, clf, src, fields, num_samples=n, cache_dir=cache,
                               metrics=("fid",))[f"fid_{NAME}"]

  first = run(N)
  (path,) = glob.glob(os.path.join(cache, "*.npz"))
  mtime = os.stat(path).st_mtime_ns
  assert computed == [N]
  assert run(N) == first  # cache hit: same value, nothing recomputed or rewritten
  assert computed == [N] and os.stat(path).st_mtime_ns == mtime
  run(N + 4)  # another n: recomputed into another file
  assert computed == [N, N + 4] and len(glob.glob(os.path.join(cache, "*.npz"))) == 2
  other = source.apply(lambda ds: ds.skip(32))  # a different real split
  test_fid = run(N, {"dataset": "tiny", "split": "test"}, other)
  assert computed == [N, N + 4, N] and len(glob.glob(os.path.join(cache, "*.npz"))) == 3
  assert test_fid != first


def test_ema_sampler_is_used_when_the_run_has_one(run_dir, clf_path, npz, tmp_path):
  gan, _, _ = loop.restore_run(run_dir)
  assert gan.generator_ema is not None
  clf = classifiers.get_classifier("domain", path=clf_path)
  source = _real_source(npz)
  got = evaluation.evaluate(gan, clf, source, {"dataset": "tiny", "split": "train"},
                            num_samples=N, cache_dir=str(tmp_path), metrics=("fid",))[f"fid_{NAME}"]
  z = tf.random.stateless_normal([N, gan.generator.latent_dim], seed=[0, 7])  # generate()'s z
  ema = gan.generator_ema(z, training=False).numpy()
  plain = gan.generator(z, training=False).numpy()
  # The two generators really differ (outputs of a 2-step tiny G are small: compare relatively).
  assert np.abs(ema - plain).max() > 0.05 * np.abs(plain).max()
  real = clf.features(source.images.take(N))
  fid_ema = sample_quality.fid_from_activations(real, clf.features(ema))
  fid_plain = sample_quality.fid_from_activations(real, clf.features(plain))
  np.testing.assert_allclose(got, fid_ema, rtol=1e-5)
  assert abs(got - fid_plain) > 1e-3 * abs(fid_ema)


def test_generate_is_compiled_once_and_equals_the_eager_generator(run_dir):
  """Batches 4, 4 and a padded 2: the same images as one eager call of G, and one trace for
  every batch of the same size, the last one included."""
  gan, _, _ = loop.restore_run(run_dir)
  g = gan.sampler()
  images, _ = sampling.generate(gan, 10, seed=4, batch_size=4)
  z = tf.random.stateless_normal([10, g.latent_dim], seed=[4, 7])
  np.testing.assert_allclose(images, g(z, None, training=False).numpy(), rtol=1e-5, atol=1e-6)
  sampling.generate(gan, 7, seed=5, batch_size=4)
  assert sampling._compiled(g).experimental_get_tracing_count() == 1  # pylint: disable=protected-access


def test_samples_are_generated_in_seeded_chunks(run_dir, clf_path, npz, tmp_path):
  gan, _, _ = loop.restore_run(run_dir)
  clf = classifiers.get_classifier("domain", path=clf_path)
  source = _real_source(npz)
  got = evaluation.evaluate(gan, clf, source, {"dataset": "tiny", "split": "train"},
                            num_samples=N, cache_dir=str(tmp_path), metrics=("fid",),
                            chunk_size=8)[f"fid_{NAME}"]
  stride = rng.EVAL_CHUNK_STRIDE
  samples = np.concatenate([evaluation.generate(gan, size, seed=k * stride)[0]
                            for k, size in enumerate([8, 8, 4])])
  want = sample_quality.fid_from_activations(clf.features(source.images.take(N)),
                                             clf.features(samples))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_make_eval_fn_evaluates_during_training(npz, clf_path, tmp_path):
  model_dir = str(tmp_path / "run")
  n = 12
  parse(["gin_configs/base/dcgan_fmnist.gin"], _npz_params(npz) + [
      "train.eval_every_steps = 1", "train.eval_fn = @make_eval_fn()",
      f"make_eval_fn.model_dir = '{model_dir}'", "make_eval_fn.classifier = 'domain'",
      f"make_eval_fn.classifier_path = '{clf_path}'", f"make_eval_fn.num_samples = {n}",
      f"make_eval_fn.cache_dir = '{tmp_path / 'cache'}'"])
  loop.train(model_dir)
  records = [r for r in _records(model_dir) if not r.get("best")]  # best: test_best_checkpoint
  assert sorted((r["step"], r["metric"]) for r in records) == sorted(
      (s, m) for s in (1, 2) for m in CLASSIFIER_NAMES)
  assert {(r["classifier"], r["n"]) for r in records} == {(NAME, n)}
  assert {r["checkpoint"] for r in records} == {"ckpt-1", "ckpt-2"}
  # The step-2 value is the FID of the step-2 weights.
  gan, _, _ = loop.restore_run(model_dir, 2)
  clf = classifiers.get_classifier("domain", path=clf_path)
  again = evaluation.evaluate(gan, clf, _real_source(npz), {"dataset": "x", "split": "train"},
                              num_samples=n, cache_dir=str(tmp_path / "cache2"),
                              metrics=("fid",))
  logged = {r["metric"]: r["value"] for r in records if r["step"] == 2}
  np.testing.assert_allclose(logged[f"fid_{NAME}"], again[f"fid_{NAME}"], rtol=1e-5)
  # The training loop logged them to TensorBoard too.
  tags = set()
  for events in glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(events):
      tags.update((v.tag, event.step) for v in event.summary.value)
  assert {(f"eval/fid_{NAME}", 1), (f"eval/fid_{NAME}", 2)} <= tags


def test_training_and_cli_make_the_same_reference_key(run_dir, npz):
  # In training only the explicit dataset.* bindings exist; the CLI parses the saved operative
  # config (defaults included). Both must give one key, so they share the reference cache.
  parse(["gin_configs/base/dcgan_fmnist.gin"], _npz_params(npz))
  in_training = evaluation.dataset_key_fields(data_lib.load(split="train"), "train")
  gin.clear_config()
  gin.parse_config_file(os.path.join(run_dir, "operative_config.gin"))
  from_run = evaluation.dataset_key_fields(data_lib.load(split="train"), "train")
  assert in_training == from_run
  assert from_run["data"]["path"] == os.path.abspath(npz) and from_run["dataset"] == "npz"


def test_make_eval_fn_needs_a_model_dir(clf_path, run_dir):
  eval_fn = evaluation.make_eval_fn(classifier="domain", classifier_path=clf_path)
  gan, _, _ = loop.restore_run(run_dir)
  with pytest.raises(evaluation.ConfigError, match="make_eval_fn.model_dir"):
    eval_fn(gan, 2)  # training binds its own model_dir (eval_fn.bind); a caller of its own must


def test_append_results_replaces_same_record_and_stores_nan_as_null(tmp_path):
  d = str(tmp_path)
  evaluation.append_results(d, 5, {"fid_x": 1.0, "kid_x_std": float("nan")}, "x", 10,
                            checkpoint="ckpt-5")
  evaluation.append_results(d, 5, {"fid_x": 2.0}, "x", 10, checkpoint="ckpt-5")
  evaluation.append_results(d, 5, {"fid_x": 3.0}, "x", 20)
  records = _records(d)
  assert [(r["metric"], r["n"], r["value"]) for r in records] == [
      ("kid_x_std", 10, None), ("fid_x", 10, 2.0), ("fid_x", 20, 3.0)]
  assert not [p for p in os.listdir(os.path.join(d, "eval")) if p.startswith(".tmp")]


# The plain case (15 s) is the adversarial one minus the attack: it runs with `-m slow`.
@pytest.mark.parametrize("adversarial", [pytest.param(False, marks=pytest.mark.slow), True])
def test_train_classifier_cli(npz, tmp_path, adversarial):
  out = str(tmp_path / "clf" / "c.keras")
  args = [f"--out={out}", "--dataset=npz", f"--dataset_path={npz}", "--epochs=1",
          "--batch_size=16"]
  if adversarial:
    args += ["--adversarial", "--pgd_steps=1", "--eval_pgd_steps=2"]
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_classifier.py")]
                        + args, capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out + ".json") as f:
    meta = json.load(f)
  name = "npz_cnn_madry" if adversarial else "npz_cnn"
  assert meta["name"] == name and meta["adversarial"] == adversarial
  assert "clean test accuracy" in proc.stdout
  # The stored accuracy is the clean accuracy on the held-out last 10% (6 of 64 examples).
  model, loaded = dc.load_domain_classifier(out)
  assert loaded["accuracy"] == meta["accuracy"]
  with np.load(npz) as f:
    held_out = data_lib.from_arrays(f["images"][-6:], f["labels"][-6:]).images.batch(16)
  assert meta["accuracy"] == pytest.approx(dc.evaluate_domain_classifier(model, held_out))
  assert classifiers.get_classifier("domain", path=out).name == name
  if adversarial:
    assert 0.0 <= meta["pgd_accuracy"] <= 1.0 and meta["epsilon"] == 0.1


def test_train_cli_evaluates_during_training(npz, clf_path, tmp_path):
  """scripts/train.py with `train.eval_fn = @make_eval_fn()`: the same process defines the train
  flags and imports the evaluation (this used to clash on --model_dir)."""
  model_dir = str(tmp_path / "run")
  params = _npz_params(npz) + [
      "train.eval_every_steps = 2", "train.eval_fn = @make_eval_fn()",
      f"make_eval_fn.model_dir = '{model_dir}'", "make_eval_fn.classifier = 'domain'",
      f"make_eval_fn.classifier_path = '{clf_path}'", "make_eval_fn.num_samples = 12",
      f"make_eval_fn.cache_dir = '{tmp_path / 'cache'}'"]
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
       "--gin_file=" + os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin"),
       f"--model_dir={model_dir}"] + [f"--gin_param={p}" for p in params],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert {(r["step"], r["metric"]) for r in _records(model_dir)} == {
      (2, m) for m in CLASSIFIER_NAMES}


@pytest.mark.slow
def test_eval_continuous_beside_a_live_training_evaluates_its_checkpoints(npz, clf_path,
                                                                          tmp_path):
  """eval.py --continuous, started while train.py is writing checkpoints, evaluates them as they
  come and stops at train.num_steps; it takes no lease, so neither process refuses the other."""
  model_dir = str(tmp_path / "live")
  params = _npz_params(npz) + ["train.num_steps = 60", "train.checkpoint_every_steps = 10",
                               "train.sample_every_steps = 60", "train.log_every_steps = 10"]
  train = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
       f"--gin_file={os.path.join(ROOT, 'gin_configs/base/dcgan_fmnist.gin')}",
       f"--model_dir={model_dir}"] + [f"--gin_param={p}" for p in params],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  try:
    for _ in range(600):  # the first checkpoint, while training goes on
      if glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index")) or train.poll() is not None:
        break
      time.sleep(0.5)
    assert train.poll() is None, "training ended before eval could start beside it"
    assert os.path.exists(os.path.join(model_dir, "lease"))  # training holds the run dir
    evaluating = _eval_cli([f"--model_dir={model_dir}", "--continuous", "--timeout_secs=300",
                            "--classifier=domain", f"--classifier_path={clf_path}",
                            f"--num_samples={N}", "--metrics=fid",
                            f"--cache_dir={tmp_path / 'c'}"], timeout=900)
    out, err = train.communicate(timeout=900)
  finally:
    if train.poll() is None:
      train.kill()
  assert train.returncode == 0, err[-3000:]
  assert evaluating.returncode == 0, evaluating.stderr[-3000:]
  assert "Traceback" not in err + evaluating.stderr
  steps = [r["step"] for r in _records(model_dir)]
  assert steps == sorted(set(steps)) and steps[-1] == 60, steps
  assert set(steps) <= set(range(10, 61, 10)), steps
  assert "lease" not in os.listdir(model_dir)  # released by training at its end
  del out


def test_manifold_metrics_and_per_class_fid_in_evaluate(run_dir, clf_path, npz, tmp_path):
  gan, _, _ = loop.restore_run(run_dir)
  clf = classifiers.get_classifier("domain", path=clf_path)
  source = _real_source(npz)
  got = evaluation.evaluate(gan, clf, source, {"dataset": "tiny", "split": "train"},
                            num_samples=N, cache_dir=str(tmp_path),
                            metrics="precision_recall,density_coverage")
  assert list(got) == [f"precision_{NAME}", f"recall_{NAME}", f"density_{NAME}",
                       f"coverage_{NAME}"]
  samples, _ = evaluation.generate(gan, N, seed=0)
  want = manifold.manifold_metrics(clf.features(source.images.take(N)), clf.features(samples))
  assert got == {f"{m}_{NAME}": v for m, v in want.items()}
  with pytest.raises(evaluation.ConfigError, match="class-conditional"):
    evaluation.evaluate(gan, clf, source, {"dataset": "tiny", "split": "train"}, num_samples=N,
                        cache_dir=str(tmp_path), metrics=("per_class_fid",))


def test_per_class_fid_against_each_class_alone():
  rng = np.random.default_rng(11)
  real = rng.normal(size=(30, 3)) * [1.0, 2.0, 0.5]
  fake = rng.normal(size=(24, 3)) + [0.5, 0.0, -1.0]
  real_y, fake_y = rng.integers(0, 3, 30), np.arange(24) % 3
  values, mean = evaluation.per_class_fid(real, real_y, fake, fake_y, 3)
  for c in range(3):
    assert values[c] == pytest.approx(
        sample_quality.fid_from_activations(real[real_y == c], fake[fake_y == c]), rel=1e-9)
  assert mean == pytest.approx(np.mean([values[c] for c in range(3)]), rel=1e-12)
  assert len({round(v, 6) for v in values.values()}) == 3
  assert evaluation.result_names("inception", ("fid", "per_class_fid"), 2) == [
      "fid", "fid_class_mean", "fid_class_0", "fid_class_1"]
  assert evaluation.result_names(NAME, ("per_class_fid",), 1) == [
      f"fid_{NAME}_class_mean", f"fid_{NAME}_class_0"]
  with pytest.raises(evaluation.ConfigError, match="class 2 .* 1 generated"):
    evaluation.per_class_fid(real, real_y, fake[:5], fake_y[:5], 3)


def test_reference_cache_keeps_labels(tmp_path):
  rng = np.random.default_rng(12)
  acts, labels = rng.normal(size=(6, 2)), np.array([2, 0, 1, 1, 0, 2])
  key = sample_quality.make_reference_key("d", "train", "c", [4, 4], 6)
  stats = sample_quality.load_or_compute_reference(
      str(tmp_path), key, lambda: sample_quality.ActivationStats(acts, key, labels=labels))
  again = sample_quality.load_or_compute_reference(str(tmp_path), key, lambda: 1 / 0,
                                                   need_labels=True)
  np.testing.assert_array_equal(again.labels, labels)
  np.testing.assert_allclose(again.activations, stats.activations)
  # A file without labels is recomputed when labels are needed.
  sample_quality.ActivationStats(acts, key).save(sample_quality.reference_path(str(tmp_path), key))
  redone = sample_quality.load_or_compute_reference(
      str(tmp_path), key, lambda: sample_quality.ActivationStats(acts, key, labels=labels[::-1]),
      need_labels=True)
  np.testing.assert_array_equal(redone.labels, labels[::-1])


@pytest.mark.slow
def test_sample_cli_truncation_and_interpolation_and_eval_cli_manifold_metrics(run_dir, clf_path,
                                                                                tmp_path):
  out = tmp_path / "s"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "sample.py"), f"--model_dir={run_dir}",
       "--num=4", f"--out={out}", "--truncation=0.5", "--interpolate=3,5,8",
       "--interpolation_steps=4"], capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert lines[-2].startswith("  interpolation sheet:"), lines
  assert lines[-2].endswith(str(out / "interpolation.png")), lines
  assert lines[-1].endswith(str(out / "interpolation.npz")), lines
  with np.load(out / "interpolation.npz") as f:
    z, images = f["z"], f["images"]
  assert len(z) == 8 and len(images) == 8 and np.abs(z[[0, 3, 7]]).max() <= 0.5
  gan, _, _ = loop.restore_run(run_dir)
  np.testing.assert_allclose(images[0], evaluation.generate(gan, 1, seed=3, truncation=0.5)[0][0],
                             rtol=1e-5, atol=1e-6)
  proc = _eval_cli([f"--model_dir={_copy(run_dir, tmp_path)}", "--classifier=domain",
                    f"--classifier_path={clf_path}", f"--num_samples={N}",
                    "--metrics=precision_recall,density_coverage",
                    f"--cache_dir={tmp_path / 'cache'}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"coverage_{NAME}" in proc.stdout
  proc = _eval_cli([f"--model_dir={run_dir}", "--classifier=domain", "--metrics=per_class_fid",
                    f"--classifier_path={clf_path}"])
  assert proc.returncode == 2 and "class-conditional" in proc.stderr


class _PixelClassifier(classifiers.Classifier):
  """Features = the pixels, logits = their first 3 (enough for the per-class FID path)."""

  def _preprocess(self, images):
    return images

  def _call(self, inputs):
    flat = tf.reshape(inputs, [tf.shape(inputs)[0], -1])
    return flat, flat[:, :3]


class _CondG(tf.keras.Model):
  """pixels = tanh(z W + class offset): 3 classes of 2x2x1 images."""

  def __init__(self):
    super().__init__(name="cond_g")
    self.latent_dim, self.num_classes, self.output_shape_ = 4, 3, (2, 2, 1)
    self.w = tf.constant(np.random.default_rng(5).normal(size=(4, 4)) * 0.3, tf.float32)

  def call(self, z, labels=None, training=None):
    offset = tf.cast(labels, tf.float32)[:, None] * tf.constant([0.3, -0.2, 0.1, 0.4])
    return tf.reshape(tf.tanh(z @ self.w + offset), [-1, 2, 2, 1])


class _CondGAN:
  conditional = True

  def __init__(self):
    self.g = _CondG()

  def sampler(self):
    return self.g


def test_per_class_fid_in_evaluate_groups_samples_and_reference_by_class(tmp_path):
  gan, clf = _CondGAN(), _PixelClassifier("pixels", batch_size=8)
  rng = np.random.default_rng(13)
  labels = rng.integers(0, 3, 60).astype(np.int32)
  real = np.tanh(rng.normal(size=(60, 2, 2, 1)) * 0.5 + labels[:, None, None, None] * 0.2)
  source = data_lib.from_arrays(real.astype(np.float32), labels)
  n = 30
  got = evaluation.evaluate(gan, clf, source, {"dataset": "toy", "split": "train"},
                            num_samples=n, cache_dir=str(tmp_path), metrics="fid,per_class_fid")
  assert list(got) == ["fid_pixels", "fid_pixels_class_mean"] + [
      f"fid_pixels_class_{c}" for c in range(3)]
  samples, fake_y = evaluation.generate(gan, n, seed=0)
  np.testing.assert_array_equal(fake_y, np.arange(n) % 3)
  fake_f, real_f = samples.reshape(n, -1), real[:n].reshape(n, -1)
  for c in range(3):
    want = sample_quality.fid_from_activations(real_f[labels[:n] == c], fake_f[fake_y == c])
    assert got[f"fid_pixels_class_{c}"] == pytest.approx(want, rel=1e-5)
  assert got["fid_pixels_class_mean"] == pytest.approx(
      np.mean([got[f"fid_pixels_class_{c}"] for c in range(3)]), rel=1e-12)
