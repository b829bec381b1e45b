"""Pod-scale input: each of P input pipelines reads and decodes only its 1/P of the data
(folder, prepared TFRecords, TFDS files), the shards are disjoint and cover the data, the cache
holds the 8-bit stored form within a memory limit, and the folder check is paid once per dataset.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import data
from tfadvgan.data import folder as local
from tfadvgan.data import pipeline
from tfadvgan.data import records as records_lib
from tfadvgan.data.throughput import DecodeCounter
from tfadvgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png_folder(path, n, seed, size=(6, 5), classes=3):
  """`n` small PNGs in `classes` subfolders, each image's first pixel its index (asymmetric)."""
  rng = np.random.default_rng(seed)
  for i in range(n):
    image = rng.integers(0, 256, size + (1,)).astype(np.uint8)
    image[0, 0, 0] = i
    folder = os.path.join(path, f"c{i % classes}")
    os.makedirs(folder, exist_ok=True)
    tf.io.write_file(os.path.join(folder, f"{i:04d}.png"), tf.io.encode_png(image))
  return path


def _first_pixels(ds):
  """The first pixel (as 0..255) of every image of a dataset of finished or stored images."""
  out = []
  for item in ds.as_numpy_iterator():
    image = item[0] if isinstance(item, tuple) else item
    value = image.reshape(-1)[0]
    out.append(int(round((value + 1) * 127.5)) if image.dtype != np.uint8 else int(value))
  return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TFADVGAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_folder_shards_decode_only_their_files(tmp_path, shards):
  n = 30  # not a multiple of 4: shards of 8, 8, 7, 7
  source = data.load("folder", path=_png_folder(str(tmp_path / "imgs"), n, seed=1))
  seen = []
  for index in range(shards):
    counter = DecodeCounter()
    shard = counter.wrap(source).stored(shards, index, seed=5)
    pixels = _first_pixels(shard)
    assert counter.count == len(pixels) <= math.ceil(n / shards)
    seen += pixels
  assert sorted(seen) == list(range(n))  # disjoint, and together the whole folder


def test_pipeline_decodes_one_image_per_trained_image(tmp_path):
  """P = 4 input pipelines with the cache off, over 3 whole passes: each decodes what it trains on
  (when sharding came after decoding, each decoded all N per pass: P times as many)."""
  n, shards, rows = 32, 4, 4
  source = data.load("folder", path=_png_folder(str(tmp_path / "imgs"), n, seed=2))
  for index in range(shards):
    counter = DecodeCounter()
    context = tf.distribute.InputContext(num_input_pipelines=shards, input_pipeline_id=index,
                                         num_replicas_in_sync=shards)
    ds = data.make_train_dataset(counter.wrap(source), batch_size=rows * shards, cache=False,
                                 latent_dim=2, input_context=context, shuffle_buffer=4)
    passes = 10
    batches = passes * (n // shards) // rows
    it = iter(ds)
    for _ in range(batches):
      next(it)
    trained = batches * rows
    # the shuffle buffer (4) and prefetching decode a little ahead; sharding after decoding
    # would decode 4x what it trains on (320 here)
    assert trained <= counter.count <= trained + 4 + 4 * rows, counter.count


def _write_prepared(tmp_path, n=23, num_files=5, seed=3, encoding="png"):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
  labels = rng.integers(0, 7, n)
  source = data.from_arrays(images, labels, num_classes=7, pad_to=32)
  out = str(tmp_path / "prepared")
  meta = data.write_records(source, out, num_files=num_files, encoding=encoding)
  return source, out, meta, images, labels


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_prepared_records_round_trip_exactly(tmp_path, encoding):
  source, out, meta, images, labels = _write_prepared(tmp_path, encoding=encoding)
  assert meta["num_examples"] == 23 and meta["shape"] == [32, 32, 1] and meta["num_classes"] == 7
  assert [f["num_examples"] for f in meta["files"]] == [4, 5, 4, 5, 5]  # 23 * k // 5 bounds
  back = data.load("tfrecord", path=out)
  assert back.shape == source.shape and back.num_classes == 7 and back.file_shards == 5
  want = [(x, y) for x, y in source.images.as_numpy_iterator()]
  got = [(x, y) for x, y in back.images.as_numpy_iterator()]
  np.testing.assert_array_equal(np.stack([x for x, _ in got]), np.stack([x for x, _ in want]))
  np.testing.assert_array_equal([y for _, y in got], labels)
  # the padded border is exact: -1 written as 0, read back as -1
  assert (np.stack([x for x, _ in got])[:, :2] == -1).all()


def test_prepared_records_shard_by_file(tmp_path):
  _, out, meta, images, _ = _write_prepared(tmp_path, n=23, num_files=5)
  source = data.load("tfrecord", path=out)
  per_file = [f["num_examples"] for f in meta["files"]]
  seen = []
  for index in range(4):
    counter = DecodeCounter()
    got = [x for x, _ in counter.wrap(source).stored(4, index, seed=9).as_numpy_iterator()]
    assert counter.count == len(got) == sum(per_file[index::4])  # its files only
    assert len(got) <= math.ceil(23 / 4) + max(per_file)  # ceil(N/P) plus one file of slack
    seen += [x[2:30, 2:30, 0] for x in got]
  key = lambda a: a.tobytes()  # pylint: disable=unnecessary-lambda-assignment
  assert sorted(map(key, seen)) == sorted(map(key, list(images)))


def test_prepared_records_fewer_files_than_pipelines_shard_by_example(tmp_path, caplog):
  _, out, _, _, _ = _write_prepared(tmp_path, n=10, num_files=2)
  source = data.load("tfrecord", path=out)
  seen = []
  for index in range(4):
    counter = DecodeCounter()
    got = list(counter.wrap(source).stored(4, index).as_numpy_iterator())
    assert counter.count == len(got) <= math.ceil(10 / 4)
    seen += [y for _, y in got]
  assert len(seen) == 10
  assert sum("2 record file(s) for 4 input pipelines" in r.getMessage()
             for r in caplog.records) == 1


def test_prepared_data_errors_are_one_line(tmp_path):
  _, out, _, _, _ = _write_prepared(tmp_path)
  with pytest.raises(ConfigError, match="already exists and is not empty"):
    data.write_records(data.load("tfrecord", path=out), out)
  with pytest.raises(ConfigError, match="2-D toy data"):
    data.write_records(data.load("ring", num_examples=10), str(tmp_path / "ring"))
  os.remove(os.path.join(out, "data-00001-of-00005.tfrecord"))
  with pytest.raises(ConfigError, match="missing 1 of its 5 record files"):
    data.load("tfrecord", path=out)
  with pytest.raises(ConfigError, match="not prepared data"):
    data.load("tfrecord", path=str(tmp_path))


def test_folder_check_is_paid_once_per_dataset(tmp_path, monkeypatch):
  path = _png_folder(str(tmp_path / "imgs"), 12, seed=4)
  checked = []
  real = local.check_images_decode
  monkeypatch.setattr(local, "check_images_decode",
                      lambda files, channels: (checked.append(len(files)), real(files, channels)))
  data.load("folder", path=path)
  data.load("folder", path=path)
  victim = os.path.join(path, "c1", "0004.png")
  with open(victim, "wb") as f:  # changed since the last check: size and mtime differ
    f.write(b"not a png any more")
  with pytest.raises(ConfigError, match=r"0004\.png.*cannot be decoded"):
    data.load("folder", path=path)
  assert checked == [12, 0, 1]


def test_folder_check_modes(tmp_path):
  path = _png_folder(str(tmp_path / "imgs"), 5, seed=6)
  with open(os.path.join(path, "c0", "0003.png"), "wb") as f:
    f.write(b"broken")
  import gin  # pylint: disable=g-import-not-at-top
  gin.bind_parameter("folder_check.mode", "off")
  data.load("folder", path=path)  # not checked: loads
  gin.bind_parameter("folder_check.mode", "all")
  with pytest.raises(ConfigError, match="0003.png"):
    data.load("folder", path=path)
  gin.bind_parameter("folder_check.mode", "sometimes")
  with pytest.raises(ConfigError, match="'changed', 'all' or 'off'"):
    data.load("folder", path=path)


def test_cache_holds_uint8_and_respects_the_memory_limit(tmp_path, caplog):
  rng = np.random.default_rng(7)
  source = data.from_arrays(rng.integers(0, 256, (40, 28, 28)).astype(np.uint8), pad_to=32)
  # stored form: 28 x 28 x 1 uint8 = 784 bytes (float32 at 32x32 would be 4096)
  assert pipeline.cache_size_bytes(source, 1) == 40 * 784
  assert pipeline.cache_size_bytes(source, 3) == 14 * 784
  next(iter(data.make_train_dataset(source, batch_size=8, latent_dim=2, cache_memory_limit=1000)))
  assert ["31.4 kB" in r.getMessage() for r in caplog.records
          if "Not caching the decoded data in memory" in r.getMessage()] == [True]
  caplog.clear()
  data.make_train_dataset(source, batch_size=8, latent_dim=2, cache_memory_limit=40 * 784)
  assert not any("Not caching" in r.getMessage() for r in caplog.records)
  with pytest.raises(ConfigError, match="cache_memory_limit"):
    data.make_train_dataset(source, batch_size=8, cache_memory_limit=-1)


def test_finished_batches_equal_per_example_math(tmp_path):
  """The pipeline converts after the cache, one op per batch: its images equal x / 127.5 - 1
  padded with -1 (NumPy) for the rows it drew."""
  rng = np.random.default_rng(8)
  images = rng.integers(0, 256, (16, 28, 28)).astype(np.uint8)
  images[:, 0, 0] = np.arange(16)  # identifies each row
  source = data.from_arrays(images, pad_to=32)
  batch = next(iter(data.make_train_dataset(source, batch_size=4, n_dis=2, latent_dim=2)))
  got = batch["images"].numpy()
  assert got.shape == (4, 2, 32, 32, 1) and got.dtype == np.float32
  rows = np.rint((got[:, :, 2, 2, 0] + 1) * 127.5).astype(int)
  want = np.pad(images[rows][..., None] / 127.5 - 1.0,
                [(0, 0), (0, 0), (2, 2), (2, 2), (0, 0)], constant_values=-1.0)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def _tfds_cifar10(data_dir, n, num_shards, seed):
  """A real TFDS `cifar10` directory (TFDS's own writer) with `num_shards` files."""
  tfds = pytest.importorskip("tensorflow_datasets")
  real = tfds.builder("cifar10")
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8)
  images[:, 0, 0, 0] = np.arange(n)
  ds = tf.data.Dataset.from_tensor_slices({"id": [f"train_{i}".encode() for i in range(n)],
                                           "image": images, "label": np.arange(n) % 10})
  builder = tfds.dataset_builders.TfDataBuilder(
      name="cifar10", config=None, version=str(real.info.version), data_dir=data_dir,
      split_datasets={"train": ds}, features=real.info.features)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=num_shards))


@pytest.mark.parametrize("num_files,shards", [(4, 4), (2, 4)])
def test_tfds_reads_its_files_and_decodes_its_share(tmp_path, num_files, shards):
  n = 24
  _tfds_cifar10(str(tmp_path / "tfds"), n, num_files, seed=10)
  source = data.load("cifar10", data_dir=str(tmp_path / "tfds"), download=False)
  assert source.file_shards == num_files and source.num_examples == n
  seen = []
  for index in range(shards):
    counter = DecodeCounter()
    pixels = _first_pixels(counter.wrap(source).stored(shards, index, seed=3))
    assert counter.count == len(pixels) <= math.ceil(n / shards) + n // num_files
    seen += pixels
  assert sorted(seen) == list(range(n))


def test_prepare_data_command(tmp_path):
  rng = np.random.default_rng(12)
  npz = str(tmp_path / "d.npz")
  np.savez(npz, images=rng.integers(0, 256, (9, 8, 8, 3)).astype(np.uint8),
           labels=rng.integers(0, 3, 9))
  out = str(tmp_path / "out")
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "prepare_data.py"), f"--out={out}",
         "--gin_param=dataset.source = 'npz'", f"--gin_param=dataset.path = '{npz}'",
         "--num_files=3"]
  done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr
  assert "wrote 9 examples of 'npz' (train), shape (8, 8, 3) uint8, in 3 file(s)" in done.stdout
  meta = json.load(open(os.path.join(out, records_lib.METADATA_FILE)))
  assert meta["num_examples"] == 9 and len(meta["files"]) == 3
  again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
  assert again.returncode == 2
  assert again.stderr.strip().splitlines()[-1].startswith("error: ") and "not empty" in again.stderr
