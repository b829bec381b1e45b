"""Bad data inputs give one clear line naming the file, at load time (before any run dir exists);
the demo's ring fallback only for its untouched default; local sources read through tf.io.gfile
(checked on `ram://`)."""

import gzip
import io
import logging
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import data
from tfadvgan.cli import common
from tfadvgan.data import idx as local
from tfadvgan.errors import ConfigError
from tfadvgan.training import run as loop
from tfadvgan.training import run_dir as run_dir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
        "train.num_steps = 2", "train.log_every_steps = 1", "train.checkpoint_every_steps = 1",
        "train.sample_every_steps = 2", "make_train_dataset.shuffle_buffer = 16",
        "train.verbose = 0", "build_gan.run_eagerly = True", "train.diagnose_every_steps = 0"]
# TF's own C++ start-up logging (CUDA probing) on stderr; everything else must be our one line.
_TF_STARTUP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                         r"[IWEF]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\])")


def _message(excinfo):
  """The ConfigError's message as the CLI prints it (gin's call-context line removed)."""
  message = common.strip_gin_context(str(excinfo.value))
  assert "\n" not in message, message
  return message


def _idx_bytes(array):
  array = np.asarray(array, np.uint8)
  return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
      ">" + "I" * array.ndim, *array.shape) + array.tobytes()


def _write(path, content):
  if tf.io.gfile.exists(path):  # ram:// appends to an existing file instead of replacing it
    tf.io.gfile.remove(path)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(content)


def _write_idx_set(directory, pixels, labels, gz=True):
  """Writes train-{images,labels} IDX files (gzipped by default) through tf.io.gfile."""
  tf.io.gfile.makedirs(directory)
  ext = ".gz" if gz else ""
  pack = gzip.compress if gz else (lambda b: b)
  images_file = f"{directory}/train-images-idx3-ubyte{ext}"
  labels_file = f"{directory}/train-labels-idx1-ubyte{ext}"
  _write(images_file, pack(_idx_bytes(pixels)))
  _write(labels_file, pack(_idx_bytes(labels)))
  return images_file, labels_file


def _pixels(rng, n=3):
  return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _padded(pixels):
  """What the idx source yields for 28x28 uint8 images: x / 127.5 - 1, padded with -1 to 32."""
  expected = np.full((len(pixels), 32, 32, 1), -1.0, np.float32)
  expected[:, 2:30, 2:30, 0] = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1)
  return expected


def _examples(source):
  items = list(source.images.as_numpy_iterator())
  if source.num_classes:
    return np.stack([x for x, _ in items]), np.array([y for _, y in items])
  return np.stack(items), None


def _png(array):
  return tf.io.encode_png(array).numpy()


# ---------------------------------------------------------------------------------------------
# IDX files


def test_truncated_gz_idx_names_the_file(tmp_path):
  rng = np.random.default_rng(10)
  images_file, _ = _write_idx_set(str(tmp_path), _pixels(rng), [1, 2, 3])
  with open(images_file, "rb") as f:
    raw = f.read()
  with open(images_file, "wb") as f:
    f.write(raw[:len(raw) // 2])
  with pytest.raises(ConfigError) as excinfo:
    data.load("idx", path=str(tmp_path))
  assert _message(excinfo) == (
      f"{images_file} is truncated: its gzip stream ends before the end-of-stream marker (the "
      f"file has {len(raw) // 2} bytes); download or copy it again (or point dataset.path at a "
      "complete copy).")


def _corrupt_body(raw):
  """A gzip stream whose deflate data is overwritten (header and length intact)."""
  mid = len(raw) // 2
  return raw[:mid] + bytes(b ^ 0xFF for b in raw[mid:mid + 64]) + raw[mid + 64:]


@pytest.mark.parametrize("case", ["not_gzip", "corrupt_gzip", "bad_magic", "empty",
                                  "size_mismatch", "truncated_header", "label_count",
                                  "label_shape"])
def test_idx_file_problems_name_the_file(tmp_path, case):
  rng = np.random.default_rng(11)
  pixels = _pixels(rng)
  images_file, labels_file = _write_idx_set(str(tmp_path), pixels, [4, 5, 6])
  good = _idx_bytes(pixels)
  if case == "not_gzip":  # a plain IDX file named .gz
    _write(images_file, good)
    expected = (f"{images_file} is not a valid gzip file (Not a gzipped file (b'\\x00\\x00')); "
                "download or copy it again (or point dataset.path at a complete copy).")
  elif case == "corrupt_gzip":
    _write(images_file, _corrupt_body(gzip.compress(good)))
    expected = re.compile(re.escape(f"{images_file} is not a valid gzip file (") + r".+"
                          + re.escape("); download or copy it again (or point dataset.path at "
                                      "a complete copy)."))
  elif case == "bad_magic":
    _write(images_file, gzip.compress(b"\x12\x34\x08\x03" + good[4:]))
    expected = (f"{images_file} is not an IDX file (bad magic number 12340803); point "
                "dataset.path at MNIST-style IDX files.")
  elif case == "empty":
    _write(images_file, gzip.compress(b""))
    expected = (f"{images_file} is not an IDX file (bad magic number none: empty file); point "
                "dataset.path at MNIST-style IDX files.")
  elif case == "size_mismatch":  # header says 3 images, the data holds 2 and a half
    _write(images_file, gzip.compress(good[:-28 * 14]))
    expected = (f"{images_file}: the IDX header says shape (3, 28, 28) (2352 bytes of data) but "
                "the file holds 1960; the file is truncated or corrupt.")
  elif case == "truncated_header":
    _write(images_file, gzip.compress(good[:10]))
    expected = (f"{images_file}: truncated IDX header (10 bytes, 3 dimensions need 16); the file "
                "is truncated or corrupt.")
  elif case == "label_count":
    _write(labels_file, gzip.compress(_idx_bytes([4, 5])))
    expected = (f"{labels_file} holds 2 labels but {images_file} holds 3 images; both files "
                "must come from the same download.")
  else:  # labels stored as a 2-D array
    _write(labels_file, gzip.compress(_idx_bytes([[4], [5], [6]])))
    expected = f"{labels_file}: expected uint8 labels [N], got uint8 (3, 1)."
  with pytest.raises(ConfigError) as excinfo:
    data.load("idx", path=str(tmp_path))
  message = _message(excinfo)
  if isinstance(expected, str):
    assert message == expected
  else:
    assert expected.fullmatch(message), message


def test_idx_header_only_read_reports_truncated_gzip(tmp_path):
  images_file = str(tmp_path / "train-images-idx3-ubyte.gz")
  _write(images_file, gzip.compress(_idx_bytes(np.zeros((2, 28, 28), np.uint8)))[:12])
  with pytest.raises(ConfigError) as excinfo:
    local.idx_num_examples(str(tmp_path))
  assert _message(excinfo).startswith(f"{images_file} is truncated: its gzip stream ends")


def test_missing_default_idx_path_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setattr(local, "DEFAULT_IDX_PATH", str(tmp_path / "absent"))
  with pytest.raises(ConfigError) as excinfo:
    data.load("idx")
  assert _message(excinfo) == (
      f"Fashion-MNIST is not at its default path {tmp_path / 'absent'} (Debian/Ubuntu: apt-get "
      "install dataset-fashion-mnist); or set dataset.path to a directory with MNIST-style IDX "
      "files.")


def test_no_source_bound_is_one_line():
  with pytest.raises(ConfigError) as excinfo:
    data.load()
  assert _message(excinfo) == (
      "No dataset: set dataset.source, e.g. --gin_param \"dataset.source = 'cifar10'\".")


# ---------------------------------------------------------------------------------------------
# Image folders: every image is decoded once at load


def test_corrupt_png_among_good_images_is_named_at_load(tmp_path):
  rng = np.random.default_rng(12)
  for i in range(5):
    _write(str(tmp_path / f"{i}.png"), _png(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)))
  bad = str(tmp_path / "3.png")
  _write(bad, b"\x00 this is not an image \x00")
  with pytest.raises(ConfigError) as excinfo:
    data.load("folder", path=str(tmp_path))
  message = _message(excinfo)
  assert re.fullmatch(
      re.escape(f"Image '{bad}' cannot be decoded (Unknown image file format.") + r"[^)]*"
      + re.escape("); remove or replace the bad file(s) in dataset.path."), message), message


def test_truncated_png_with_valid_header_is_caught_and_bad_files_counted(tmp_path):
  """A cut PNG keeps its magic bytes (a header check would pass it); the decode check does not."""
  rng = np.random.default_rng(13)
  for cls in ("cat", "dog"):
    tf.io.gfile.makedirs(str(tmp_path / cls))
    for i in range(3):
      _write(str(tmp_path / cls / f"{i}.png"),
             _png(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)))
  full = _png(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
  truncated = str(tmp_path / "cat" / "1.png")
  _write(truncated, full[:len(full) // 2])
  assert full[:8] == b"\x89PNG\r\n\x1a\n"
  _write(str(tmp_path / "dog" / "2.png"), b"")
  with pytest.raises(ConfigError) as excinfo:
    data.load("folder", path=str(tmp_path))
  assert _message(excinfo) == (
      f"Image '{truncated}' cannot be decoded (Invalid PNG data, size {len(full) // 2}); 1 more "
      f"of the 6 images fail too (next: '{tmp_path / 'dog' / '2.png'}'); remove or replace the "
      "bad file(s) in dataset.path.")


def test_first_image_corrupt_is_named(tmp_path):
  rng = np.random.default_rng(14)
  _write(str(tmp_path / "a.png"), b"GIF89a-but-not-really")
  _write(str(tmp_path / "b.png"), _png(rng.integers(0, 256, (4, 4, 1), dtype=np.uint8)))
  with pytest.raises(ConfigError) as excinfo:
    data.load("folder", path=str(tmp_path))
  message = _message(excinfo)
  assert message.startswith(f"Image '{tmp_path / 'a.png'}' cannot be decoded (")
  assert message.endswith("); remove or replace it in dataset.path.")


# ---------------------------------------------------------------------------------------------
# The demo's ring fallback


def _parse_demo(params=()):
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs", "demo.gin")], list(TINY) + list(params))


def test_demo_falls_back_only_for_its_untouched_default(tmp_path, monkeypatch, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  absent = str(tmp_path / "no-fashion-mnist")
  monkeypatch.setattr(local, "DEFAULT_IDX_PATH", absent)
  _parse_demo()
  gan = loop.train(str(tmp_path / "run"))
  line = (f"Fashion-MNIST is not installed at {absent} (Debian/Ubuntu: apt-get "
          "install dataset-fashion-mnist), so this demo trains on the 2-D ring of 8 Gaussians "
          "with MLP networks instead. Set dataset.source / dataset.path to train on other data.")
  assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
      line, "the ring has no images: the demo skips its FID/IS evaluation."]
  assert not os.path.exists(tmp_path / "run" / "checkpoints" / "best")
  assert run_dir_lib.read_run_info(str(tmp_path / "run"))["shape"] == [2]
  assert gan.sampler()(tf.zeros([3, gan.generator.latent_dim]), training=False).shape == (3, 2)


@pytest.mark.parametrize("param,expected", [
    # The default path itself, set explicitly, is the user's choice: an error, not a fallback.
    ("dataset.path = '{absent}'", "dataset.path '{absent}' does not exist; set dataset.path to a "
     "directory with MNIST/Fashion-MNIST IDX files for 'idx'."),
    ("dataset.classes = [0, 1]", "Fashion-MNIST is not at its default path {absent} "
     "(Debian/Ubuntu: apt-get install dataset-fashion-mnist); or set dataset.path to a directory "
     "with MNIST-style IDX files."),
    ("dataset.source = 'fashion_mnist_idx'", "Fashion-MNIST is not at its default path {absent} "
     "(Debian/Ubuntu: apt-get install dataset-fashion-mnist); or set dataset.path to a directory "
     "with MNIST-style IDX files."),
    ("train.fallback_to_ring = False", "Fashion-MNIST is not at its default path {absent} "
     "(Debian/Ubuntu: apt-get install dataset-fashion-mnist); or set dataset.path to a directory "
     "with MNIST-style IDX files."),
])
def test_demo_does_not_fall_back_from_anything_set(tmp_path, monkeypatch, caplog, param,
                                                   expected):
  caplog.set_level(logging.INFO, logger="absl")
  absent = str(tmp_path / "no-fashion-mnist")
  monkeypatch.setattr(local, "DEFAULT_IDX_PATH", absent)
  _parse_demo([param.format(absent=absent)])
  with pytest.raises(ConfigError) as excinfo:
    loop.train(str(tmp_path / "run"))
  assert _message(excinfo) == expected.format(absent=absent)
  assert "ring" not in caplog.text
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.skipif(not os.path.isdir(local.DEFAULT_IDX_PATH),
                    reason=f"Fashion-MNIST not installed at {local.DEFAULT_IDX_PATH}")
def test_demo_uses_fashion_mnist_when_installed(caplog):
  caplog.set_level(logging.INFO, logger="absl")
  _parse_demo()
  source, fell_back = data.load_with_ring_fallback(True)
  assert not fell_back and source.name == "idx" and source.shape == (32, 32, 1)
  assert source.num_classes == 10 and int(source.images.cardinality()) == 60000
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------------------------
# The CLI: exit 2, one `error:` line, no run dir


def _bad_idx_dir(tmp_path):
  rng = np.random.default_rng(15)
  images_file, _ = _write_idx_set(str(tmp_path / "idx"), _pixels(rng, 8), np.arange(8) % 10)
  with open(images_file, "rb") as f:
    raw = f.read()
  with open(images_file, "wb") as f:
    f.write(raw[:100])
  return [f"dataset.path = '{tmp_path / 'idx'}'"], (
      f"error: {images_file} is truncated: its gzip stream ends before the end-of-stream marker "
      "(the file has 100 bytes); download or copy it again (or point dataset.path at a complete "
      "copy).")


def _bad_folder(tmp_path):
  rng = np.random.default_rng(16)
  folder = tmp_path / "images"
  folder.mkdir()
  for i in range(6):
    _write(str(folder / f"{i:02d}.png"), _png(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)))
  _write(str(folder / "04.png"), b"<html>404 Not Found</html>")
  return ["dataset.source = 'folder'", f"dataset.path = '{folder}'"], re.compile(
      re.escape(f"error: Image '{folder / '04.png'}' cannot be decoded (Unknown image file "
                "format.") + r"[^)]*" + re.escape("); remove or replace the bad file(s) in "
                                                   "dataset.path."))


def _cifar11(tmp_path):
  del tmp_path
  return ["dataset.source = 'cifar11'"], re.compile(
      re.escape("error: Unknown dataset source 'cifar11'. Choose one of: ") + r".*\bcifar10\b.*")


def _missing_path(tmp_path):
  return [f"dataset.path = '{tmp_path / 'missing'}'"], (
      f"error: dataset.path '{tmp_path / 'missing'}' does not exist; set dataset.path to a "
      "directory with MNIST/Fashion-MNIST IDX files for 'idx'.")


def _empty_dir(tmp_path):
  (tmp_path / "empty").mkdir()
  return [f"dataset.path = '{tmp_path / 'empty'}'"], (
      f"error: No train-images-idx3-ubyte[.gz] file in '{tmp_path / 'empty'}' for split "
      "'train'; set dataset.path to a directory with MNIST-style IDX files.")


def _out_of_memory(tmp_path):
  """A generator with a layer TensorFlow cannot allocate (460 GB): ResourceExhaustedError
  at build time, before the run dir exists. The layers built before it are allocated, so the
  width is no larger than that needs (width 100000 made the process peak at 8.6 GB, 30000 at
  3.0)."""
  path = tmp_path / "data.npz"
  np.savez(path, images=np.random.default_rng(23).integers(0, 256, (8, 32, 32, 1), np.uint8))
  return ["dataset.source = 'npz'", f"dataset.path = '{path}'",
          "build_generator.width = 30000"], (
      "error: out of memory (a tensor of shape [4,4,60000,120000]): the batch, the networks' "
      "width or the resolution is too large for this device; reduce train.batch_size, "
      "build_generator.width / build_discriminator.width, or spread the batch over more "
      "devices.")


# 6-7 s each (a process). The file-naming cases stay quick; the messages of the other four are
# checked in-process above and in test_validation, so their CLI runs are `-m slow`.
@pytest.mark.parametrize("make_case", [_bad_idx_dir, _bad_folder] + [
    pytest.param(f, marks=pytest.mark.slow)
    for f in (_cifar11, _missing_path, _empty_dir, _out_of_memory)],
    ids=lambda f: f.__name__.strip("_"))
def test_train_cli_bad_data_is_one_line_and_leaves_no_run_dir(tmp_path, make_case):
  params, expected = make_case(tmp_path)
  work = tmp_path / "cwd"
  work.mkdir()
  model_dir = tmp_path / "run"
  args = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
          f"--gin_file={os.path.join(ROOT, 'gin_configs', 'demo.gin')}",
          f"--model_dir={model_dir}", "--gin_param=train.num_steps = 2",
          "--gin_param=train.batch_size = 4"] + [f"--gin_param={p}" for p in params]
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=180)
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip() and not _TF_STARTUP.match(l)]
  assert len(lines) == 1, proc.stderr
  if isinstance(expected, str):
    assert lines[0] == expected
  else:
    assert expected.fullmatch(lines[0]), lines[0]
  assert "ring" not in proc.stdout
  assert not os.path.exists(model_dir)
  assert os.listdir(work) == []


# ---------------------------------------------------------------------------------------------
# Every local source through tf.io.gfile: data on ram:// (TF's in-memory filesystem, which goes
# through the same layer as gs://)


@pytest.fixture(name="ram")
def _ram(request):
  root = f"ram://h2_data_errors/{request.node.name}"
  tf.io.gfile.makedirs(root)
  yield root
  tf.io.gfile.rmtree(root)


def test_idx_on_ram(ram):
  rng = np.random.default_rng(20)
  pixels, labels = _pixels(rng, 4), np.array([9, 0, 3, 3], np.uint8)
  _write_idx_set(f"{ram}/fm", pixels, labels)
  source = data.load("idx", path=f"{ram}/fm")
  assert source.shape == (32, 32, 1) and source.num_classes == 10
  x, y = _examples(source)
  np.testing.assert_array_equal(x, _padded(pixels))
  np.testing.assert_array_equal(y, labels)
  assert local.idx_num_examples(f"{ram}/fm") == 4


def test_folder_on_ram(ram):
  rng = np.random.default_rng(21)
  written = {}
  for cls in ("zebra", "ant"):
    tf.io.gfile.makedirs(f"{ram}/imgs/{cls}")
    for i in range(2):
      image = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
      _write(f"{ram}/imgs/{cls}/{i}.png", _png(image))
      written[(cls, i)] = image
  source = data.load("folder", path=f"{ram}/imgs")
  assert source.shape == (5, 5, 3) and source.num_classes == 2
  x, y = _examples(source)
  order = [("ant", 0), ("ant", 1), ("zebra", 0), ("zebra", 1)]
  np.testing.assert_array_equal(x, np.stack([written[k] for k in order]).astype(np.float32)
                                / np.float32(127.5) - 1)
  np.testing.assert_array_equal(y, [0, 0, 1, 1])
  _write(f"{ram}/imgs/ant/1.png", b"broken")
  with pytest.raises(ConfigError) as excinfo:
    data.load("folder", path=f"{ram}/imgs")
  assert _message(excinfo).startswith(f"Image '{ram}/imgs/ant/1.png' cannot be decoded (")


def test_npz_on_ram(ram):
  rng = np.random.default_rng(22)
  images = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
  labels = np.array([2, 0, 1])
  buf = io.BytesIO()
  np.savez(buf, images=images, labels=labels)
  _write(f"{ram}/d.npz", buf.getvalue())
  source = data.load("npz", path=f"{ram}/d.npz")
  x, y = _examples(source)
  np.testing.assert_array_equal(x, images.astype(np.float32) / np.float32(127.5) - 1)
  np.testing.assert_array_equal(y, labels)
  _write(f"{ram}/cut.npz", buf.getvalue()[:40])
  with pytest.raises(ConfigError) as excinfo:
    data.load("npz", path=f"{ram}/cut.npz")
  assert _message(excinfo).startswith(f"Cannot read '{ram}/cut.npz' as an .npz file (")


@pytest.mark.parametrize("archive", [True, False])
def test_cifar_python_on_ram(ram, archive):
  rng = np.random.default_rng(23)
  batches = {}
  for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch"):
    batches[name] = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                     b"labels": list(rng.integers(0, 10, 2))}
  if archive:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
      for name, batch in batches.items():
        blob = pickle.dumps(batch)
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    path = f"{ram}/cifar-10-python.tar.gz"
    _write(path, buf.getvalue())
  else:
    path = f"{ram}/cifar-10-batches-py"
    tf.io.gfile.makedirs(path)
    for name, batch in batches.items():
      _write(f"{path}/{name}", pickle.dumps(batch))
  source = data.load("cifar_python", split="test", path=path)
  x, y = _examples(source)
  raw = batches["test_batch"][b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(x, raw.astype(np.float32) / np.float32(127.5) - 1)
  np.testing.assert_array_equal(y, batches["test_batch"][b"labels"])


# ---------------------------------------------------------------------------------------------
# Data that changed between two runs of one run dir


def _npz_run(path, model_dir, num_steps, params=()):
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs", "base", "dcgan_fmnist.gin")],
                   list(TINY) + ["dataset.source = 'npz'", f"dataset.path = '{path}'",
                                 f"train.num_steps = {num_steps}"] + list(params))
  return loop.train(model_dir)


@pytest.mark.parametrize("change", ["channels", "labels"])
def test_changed_data_in_one_run_dir_is_named_not_blamed_on_the_checkpoint(tmp_path, change):
  """The same command on a file rewritten with other data: one line naming the saved and the new
  shape and classes (before, the restore called the checkpoint corrupt), nothing written."""
  rng = np.random.default_rng(21)
  path, run = str(tmp_path / "data.npz"), str(tmp_path / "run")
  np.savez(path, images=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
  _npz_run(path, run, 1)
  before = {p: os.path.getmtime(p) for p in glob_files(run)}
  if change == "channels":
    np.savez(path, images=rng.integers(0, 256, (16, 32, 32, 1), dtype=np.uint8))
    now = "shape (32, 32, 1) with 0 classes"
  else:
    np.savez(path, images=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
             labels=rng.integers(0, 4, 16))
    now = "shape (32, 32, 3) with 4 classes"
  with pytest.raises(ConfigError) as info:
    _npz_run(path, run, 2)
  assert _message(info) == (
      f"The data changed since {run} was trained: it holds a run on npz of shape (32, 32, 3) with "
      f"0 classes, and the data loaded now (npz) has {now}. Pass the run's data (dataset.* in its "
      "operative_config.gin), or use a new --model_dir.")
  assert {p: os.path.getmtime(p) for p in glob_files(run)} == before


def glob_files(directory):
  return sorted(os.path.join(d, f) for d, _, files in os.walk(directory) for f in files
                if "lease" not in f)


# ---------------------------------------------------------------------------------------------
# Sizes out of proportion with the data or the machine


def test_a_batch_larger_than_the_dataset_is_one_line_before_any_run_dir(tmp_path):
  path, run = str(tmp_path / "data.npz"), str(tmp_path / "run")
  np.savez(path, images=np.random.default_rng(22).integers(0, 256, (6, 32, 32, 1), np.uint8))
  with pytest.raises(ConfigError) as info:
    _npz_run(path, run, 1, ["train.batch_size = 8"])
  assert _message(info) == (
      "train.batch_size = 8 is larger than the 6 examples of npz: every batch would repeat "
      "examples. Set train.batch_size <= 6, or train on more data.")
  assert not os.path.exists(run)
  _npz_run(path, run, 1, ["train.batch_size = 6"])  # the whole dataset in one batch is fine


def test_out_of_memory_is_one_line_naming_the_tensor():
  error = tf.errors.ResourceExhaustedError(
      None, None, "Exception encountered when calling Conv2DTranspose.call().\n\n{{function_node "
      "x}} OOM when allocating tensor with shape[4,4,200000,400000] and type float on CPU:0")
  assert common.out_of_memory_message(error) == (
      "out of memory (a tensor of shape [4,4,200000,400000]): the batch, the networks' width or "
      "the resolution is too large for this device; reduce train.batch_size, "
      "build_generator.width / build_discriminator.width, or spread the batch over more devices.")
  assert common.out_of_memory_message(ValueError("OOM when allocating tensor")) is None
  assert common.out_of_memory_message(tf.errors.ResourceExhaustedError(None, None, "quota")) == (
      "out of memory: the batch, the networks' width or the resolution is too large for this "
      "device; reduce train.batch_size, build_generator.width / build_discriminator.width, or "
      "spread the batch over more devices.")


@pytest.mark.parametrize("build, expected", [
    (lambda ring: data.make_train_dataset(ring, 0), "batch_size must be an integer >= 1; got 0."),
    (lambda ring: data.make_train_dataset(ring, 4, n_dis=1.5),
     "n_dis must be an integer >= 1; got 1.5."),
    (lambda ring: data.make_train_dataset(ring, 4, seed="7"), "seed must be an integer; got '7'."),
    (lambda ring: data.make_train_dataset(ring, 4, cache_memory_limit=-1),
     "make_train_dataset.cache_memory_limit must be an integer >= 0 or None; got -1."),
    (lambda ring: data.make_train_dataset(ring, 4, input_shards=-2),
     "make_train_dataset.input_shards must be an integer >= 1; got -2."),
    (lambda ring: data.make_train_dataset(ring, 6, input_shards=4),
     "train.batch_size=6 must divide by the 4 input shard(s) x 1 replica(s) per input pipeline."),
    (lambda ring: data.load(ring, num_examples=0), "dataset.num_examples must be an integer >= 1; "
     "got 0."),
    (lambda ring: data.load("ring", num_examples=2.5),
     "dataset.num_examples must be an integer >= 1; got 2.5."),
    (lambda ring: data.load("ring", resolution=-3),
     "dataset.resolution must be an integer >= 1 or None; got -3."),
])
def test_pipeline_and_load_sizes_are_checked_in_one_line(build, expected):
  """The input pipeline's and `load`'s integer knobs go through errors.check_int: one line that
  names the knob, the allowed range and the value."""
  ring = data.load("ring", num_examples=12)
  with pytest.raises(ConfigError) as excinfo:
    build(ring)
  assert _message(excinfo) == expected
