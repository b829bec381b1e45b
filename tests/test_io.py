"""tfadvgan.storage, and a whole run on ram:// (TensorFlow's in-memory filesystem, reached through the
same tf.io.gfile layer as gs://) that must leave nothing on local disk."""
import json
import logging
import os
import tempfile
import uuid

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan.cli import common
from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.training import checkpoints
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIFIER = os.path.join(ROOT, "classifiers", "fmnist_cnn.keras")


@pytest.fixture(params=["local", "ram"])
def directory(request, tmp_path):
  if request.param == "local":
    return str(tmp_path / "d")
  return f"ram://tfadvgan-test-io-{uuid.uuid4().hex}/d"


def _names(directory):
  return storage.listdir(directory)


def test_atomic_write_creates_overwrites_and_leaves_no_temp(directory):
  path = storage.join(directory, "sub", "a.json")
  storage.atomic_write(path, "first")
  storage.atomic_write(path, "second, longer")
  assert storage.read(path) == "second, longer"
  storage.atomic_write(path, b"\x00\x01bytes")
  assert storage.read(path, binary=True) == b"\x00\x01bytes"
  assert _names(storage.join(directory, "sub")) == ["a.json"]


def test_failed_atomic_write_keeps_the_old_file_and_removes_the_temp(directory):
  path = storage.join(directory, "a.txt")
  storage.atomic_write(path, "old")

  def half_then_fail(tmp):
    assert storage.basename(tmp).startswith(storage.TEMP_PREFIX) and tmp.endswith("a.txt")
    storage.write(tmp, "half a fi")
    raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a write

  with pytest.raises(KeyboardInterrupt):
    storage.atomic_save(path, half_then_fail)
  assert storage.read(path) == "old"
  assert _names(directory) == ["a.txt"]


def test_optional_json_default_value_and_corrupt(directory):
  path = storage.join(directory, "x.json")
  assert storage.read_optional_json(path, default=[7]) == [7]
  storage.atomic_write(path, '{"a": [1, 2.5]}')
  assert storage.read_optional_json(path, expect=dict) == {"a": [1, 2.5]}
  with pytest.raises(errors.ConfigError, match=r"x\.json is corrupt \(not a JSON list\); fix or "
                     r"delete it\.$"):
    storage.read_optional_json(path, default=[], expect=list)
  storage.atomic_write(path, '{"a": ')
  with pytest.raises(errors.ConfigError, match=r"x\.json is corrupt \(.*\); rewrite it\.$"):
    storage.read_optional_json(path, corrupt_fix="rewrite it.")


@pytest.mark.parametrize("text", ["[1, ", '{"best": 1}'])
def test_corrupt_results_and_best_files_are_one_line_errors(tmp_path, text):
  """results.json must hold a list and best.json an object: each, broken or of the other kind,
  is a ConfigError that names it; absent, they are empty."""
  from tfadvgan.metrics import results_file  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import best  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / "run")
  assert results_file.read_results(model_dir) == []
  storage.atomic_write(results_file.results_path(model_dir), text)
  with pytest.raises(errors.ConfigError, match=r"results\.json is corrupt .*; fix or delete it"):
    results_file.read_results(model_dir)
  checkpoint = tf.train.Checkpoint(v=tf.Variable(1.0))
  assert best.BestCheckpoint(checkpoint, model_dir).best is None
  storage.atomic_write(storage.join(checkpoints.best_dir(model_dir), best.BEST_FILE),
                       "[1]" if text.startswith("{") else text)
  with pytest.raises(errors.ConfigError, match=r"best\.json is corrupt .*; fix or delete it"):
    best.BestCheckpoint(checkpoint, model_dir)


def test_npz_round_trip(directory):
  rng = np.random.default_rng(3)
  images = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
  storage.save_npz(storage.join(directory, "x.npz"), images=images, labels=np.arange(3))
  loaded = storage.load_npz(storage.join(directory, "x.npz"))
  np.testing.assert_array_equal(loaded["images"], images)
  np.testing.assert_array_equal(loaded["labels"], [0, 1, 2])


def test_rename_dir_moves_every_file(directory):
  # gfile's own directory rename on ram:// "succeeds" and drops the contents; rename_dir copies.
  storage.atomic_write(storage.join(directory, "src", "a", "f.txt"), "f")
  storage.atomic_write(storage.join(directory, "src", "g.txt"), "g")
  storage.rename_dir(storage.join(directory, "src"), storage.join(directory, "dst"))
  assert not storage.exists(storage.join(directory, "src"))
  assert storage.read(storage.join(directory, "dst", "a", "f.txt")) == "f"
  assert storage.read(storage.join(directory, "dst", "g.txt")) == "g"


def test_unwritable_paths_are_one_line_config_errors(tmp_path):
  (tmp_path / "afile").write_text("x")
  target = str(tmp_path / "afile" / "run")
  with pytest.raises(errors.ConfigError) as info:
    storage.makedirs(target)
  assert str(info.value) == (f"Cannot create directory {target}: a part of that path is a file, "
                             "not a directory: choose another path.")
  with pytest.raises(errors.ConfigError, match=r"^Cannot write .*/afile/x\.json: a part"):
    storage.write(str(tmp_path / "afile" / "x.json"), "{}")
  assert (tmp_path / "afile").read_text() == "x"
  with pytest.raises(FileNotFoundError):
    storage.read(str(tmp_path / "missing.txt"))


def test_paths():
  assert storage.abspath("ram://a/b") == "ram://a/b"
  assert storage.abspath("rel") == os.path.join(os.getcwd(), "rel")
  assert storage.dirname("gs://bucket/run/x.json") == "gs://bucket/run"
  assert storage.basename("gs://bucket/run/") == "run"
  assert storage.local_path("file:///tmp/x") == "/tmp/x"
  assert storage.local_path("gs://b/x") is None and storage.local_path("/tmp/x") == "/tmp/x"


def test_gin_reads_config_files_through_gfile():
  path = f"ram://tfadvgan-test-io-{uuid.uuid4().hex}/operative_config.gin"
  storage.atomic_write(path, "train.num_steps = 7\n")
  gin.parse_config_file(path)
  assert gin.query_parameter("train.num_steps") == 7


# ------------------------------------------------------------------------ a run on ram://

def _snapshot(root, skip=()):
  """{relative path: (size, mtime)} of every file under `root`, except under `skip`."""
  found = {}
  skip = tuple(os.path.abspath(s) for s in skip)
  for directory, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if d not in (".git", "__pycache__", ".pytest_cache")
               and not os.path.abspath(os.path.join(directory, d)).startswith(skip)]
    for name in files + [d + "/" for d in dirs]:
      full = os.path.join(directory, name)
      stat = os.stat(full)
      found[os.path.relpath(full, root)] = (stat.st_size, stat.st_mtime_ns) if name[-1] != "/" \
          else None
  return found


def _parse(data_path, num_steps):
  gin.clear_config()
  common.parse_gin(
      [os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin")],
      ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
       f"train.num_steps = {num_steps}", "train.log_every_steps = 1",
       "train.checkpoint_every_steps = 1", "train.sample_every_steps = 2",
       "train.diagnose_every_steps = 0", "make_train_dataset.shuffle_buffer = 16",
       "train.verbose = 0", "build_gan.run_eagerly = True", "dataset.source = 'npz'",
       f"dataset.path = '{data_path}'"])


def test_a_whole_run_on_ram_leaves_nothing_on_local_disk(tmp_path, monkeypatch, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  from tfadvgan.metrics import classifiers  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import diagnostics as diag  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  from tfadvgan import images  # pylint: disable=g-import-not-at-top
  from tfadvgan.gans import sampling  # pylint: disable=g-import-not-at-top
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top

  # The data (32x32 grey images, 10 classes) is the test's own local input.
  rng = np.random.default_rng(5)
  data_path = str(tmp_path / "data.npz")
  np.savez(data_path, images=rng.integers(0, 256, (32, 32, 32, 1)).astype(np.uint8),
           labels=(np.arange(32) % 10).astype(np.int64))
  # The system temp dir is redirected to a private empty one for the test (other processes on
  # the machine write to /tmp); anything that uses a temp file would show up there.
  private_tmp = tmp_path / "systmp"
  private_tmp.mkdir()
  monkeypatch.setenv("TMPDIR", str(private_tmp))
  monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
  assert tempfile.gettempdir() == str(private_tmp)
  cwd_before = _snapshot(os.getcwd(), skip=[tmp_path])

  root = f"ram://tfadvgan-test-flow-{uuid.uuid4().hex}"
  model_dir = storage.join(root, "run")
  cache_dir = storage.join(root, "cache")

  # train, then train again: resumes.
  _parse(data_path, 2)
  loop.train(model_dir)
  _parse(data_path, 3)
  gan = loop.train(model_dir)
  assert int(gan.global_step.numpy()) == 3
  assert f"resumed from {model_dir}/checkpoints/ckpt-2 at step 2" in [
      r.getMessage() for r in caplog.records]

  # sample (what scripts/sample.py calls)
  gan, info, ckpt = loop.restore_run(model_dir)
  assert ckpt == f"{model_dir}/checkpoints/ckpt-3" and info["shape"] == [32, 32, 1]
  samples, labels = sampling.generate(gan, 10)
  npz, grids = images.write_samples(storage.join(model_dir, "sample_out"), samples, labels)
  assert storage.load_npz(npz)["images"].shape == (10, 32, 32, 1)

  # eval with the shipped domain classifier (what scripts/eval.py calls)
  classifier = classifiers.get_classifier("domain", path=CLASSIFIER)
  source = data_lib.load(split="train")
  fields = evaluation.dataset_key_fields(source, "train")
  fields["classifier_sha1"] = evaluation.classifier_fingerprint("domain", CLASSIFIER)
  results = evaluation.evaluate(gan, classifier, source, fields, num_samples=16,
                                cache_dir=cache_dir, metrics=("fid",), batch_size=16,
                                num_reference=16)
  evaluation.append_results(model_dir, 3, results, classifier.name, 16, checkpoint="ckpt-3")
  [record] = evaluation.read_results(model_dir)
  assert record["metric"] == "fid_fmnist_cnn" and np.isfinite(record["value"])

  # diagnose (what scripts/diagnose.py calls: the library functions, then PNGs and JSON)
  real = np.concatenate([b[0].numpy() for b in source.images.take(16).batch(16)])
  d_fn = diag.discriminator_fn(gan)
  stats = diag.input_gradient_stats(d_fn, real, bins=5)
  out_dir = storage.join(model_dir, "diagnostics")
  images.write_png(storage.join(out_dir, "gradient_grid_step3.png"), diag.gradient_grid(d_fn, real))
  images.write_png(storage.join(out_dir, "gradient_histogram_step3.png"),
                   diag.histogram_image(stats["histogram"]["counts"]))
  storage.atomic_write(storage.join(out_dir, "diagnostics_step3.json"),
                  json.dumps({"step": 3, "model_dir": storage.abspath(model_dir),
                              "l1": float(stats["l1"])}))

  found = sorted(path[len(root) + 1:] for path in _all_files(root))
  expected = {
      "run/config.gin", "run/operative_config.gin", "run/run.json",
      "run/checkpoints/checkpoint", "run/checkpoints/ckpt-3.index",
      "run/checkpoints/ckpt-3.data-00000-of-00001", "run/samples/samples_00000002.png",
      "run/sample_out/samples.npz", "run/sample_out/grid_000.png", "run/eval/results.json",
      "run/diagnostics/diagnostics_step3.json", "run/diagnostics/gradient_grid_step3.png",
      "run/diagnostics/gradient_histogram_step3.png"}
  assert expected <= set(found), sorted(expected - set(found))
  assert any(f.startswith("run/train/events.out.tfevents") for f in found)
  assert any(f.startswith("cache/reference_") and f.endswith(".npz") for f in found)
  assert not [f for f in found if storage.basename(f).startswith(storage.TEMP_PREFIX)]
  assert json.loads(storage.read(storage.join(model_dir, "run.json")))["shape"] == [32, 32, 1]
  assert "train.num_steps = 3" in storage.read(storage.join(model_dir, checkpoints.OPERATIVE_FILE))
  assert storage.read(storage.join(model_dir, "samples/samples_00000002.png"), binary=True)[:4] == \
      b"\x89PNG"

  # Nothing on local disk: no `ram:` folder in the working directory, no temp files.
  assert _snapshot(os.getcwd(), skip=[tmp_path]) == cwd_before
  # TF's autograph leaves the Python source of converted functions there (its own compiler
  # output, whatever the model_dir); anything else would be ours.
  assert [n for n in os.listdir(private_tmp)
          if not (n.startswith("__autograph_generated_file") and n.endswith(".py"))] == []
  assert sorted(os.listdir(tmp_path)) == ["data.npz", "systmp"]


def _all_files(root):
  for directory, _, files in tf.io.gfile.walk(root):
    for name in files:
      yield storage.join(directory, name)


@pytest.mark.slow
def test_the_scripts_write_only_through_gfile(tmp_path):
  """train/sample/eval/diagnose as subprocesses with file:// URLs: any file not written through
  gfile would land in a folder literally named `file:` in the working directory."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(6)
  data_path = str(tmp_path / "data.npz")
  np.savez(data_path, images=rng.integers(0, 256, (32, 32, 32, 1)).astype(np.uint8),
           labels=(np.arange(32) % 10).astype(np.int64))
  work = tmp_path / "cwd"
  work.mkdir()
  run = f"file://{tmp_path}/run"
  params = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
            "train.num_steps = 2", "train.checkpoint_every_steps = 1", "train.verbose = 0",
            "build_gan.run_eagerly = True", "dataset.source = 'npz'",
            f"dataset.path = '{data_path}'"]
  commands = [
      ["train", "--gin_file=" + os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin"),
       f"--model_dir={run}"] + [f"--gin_param={p}" for p in params],
      ["sample", f"--model_dir={run}", "--num=5"],
      ["eval", f"--model_dir={run}", "--classifier=domain", f"--classifier_path={CLASSIFIER}",
       "--num_samples=16", "--metrics=fid", f"--cache_dir=file://{tmp_path}/cache"],
      ["diagnose", f"--model_dir={run}", "--num=8", "--which=accuracy,gradients"]]
  for name, *args in commands:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", f"{name}.py")] + args,
                          capture_output=True, text=True, cwd=work, timeout=600)
    assert proc.returncode == 0, (name, proc.stderr[-2000:])
  assert os.listdir(work) == []
  for path in ["run/run.json", "run/operative_config.gin", "run/sample_out/samples.npz",
               "run/eval/results.json", "run/diagnostics/diagnostics_step2.json",
               "run/diagnostics/gradient_grid_step2.png"]:
    assert (tmp_path / path).is_file(), path
  assert len(list((tmp_path / "cache").glob("reference_*.npz"))) == 1
