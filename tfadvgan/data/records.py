"""Prepared data: any image source written once as sharded TFRecord files (`write_records`), read
back by the `tfrecord` source with file-level sharding.

For pod runs on large data (LSUN, ImageNet, a big folder): every image is validated and brought to
its training size once, by `scripts/prepare_data.py`, and each host then reads only its files
(file i goes to input pipeline i mod P) and decodes only its images. A directory holds

  data-00000-of-00012.tfrecord ...   tf.train.Example records: `image` (PNG, or raw bytes),
                                     `label` (int64; labelled data only), in source order
  tfadvgan_data.json                 format, count, shape, dtype, encoding, classes, files

The metadata file is written last, so a directory without it is not (yet) prepared data. Every
read and write goes through tf.io.gfile (local disks, gs://).
"""
import json
import math

from absl import logging
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.data import registry
from tfadvgan.data import sources
from tfadvgan.data import transforms

METADATA_FILE = "tfadvgan_data.json"
FORMAT = "tfadvgan-tfrecord"
ENCODINGS = ("png", "raw")
DEFAULT_EXAMPLES_PER_FILE = 5000


def _file_name(index, count):
  return f"data-{index:05d}-of-{count:05d}.tfrecord"


def _stored_form(source):
  """('uint8' or 'float32'): 8-bit sources are written as uint8 at their final size."""
  spec = source.stored().element_spec
  spec = spec[0] if source.num_classes > 0 else spec
  return "uint8" if spec.dtype == tf.uint8 else "float32"


def _encoded_batches(source, dtype, encoding, batch_size=256):
  """Finished images (re-quantized to uint8 for 8-bit data) as encoded bytes, with labels."""

  def encode(images, labels=None):
    images = source.finish(images)
    if dtype == "uint8":
      images = transforms.to_uint8(images)
    if encoding == "png":
      data = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)
    else:
      data = tf.map_fn(lambda x: tf.io.serialize_tensor(x), images, fn_output_signature=tf.string)
    return data if labels is None else (data, labels)

  ds = source.stored().batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def _example(data, label=None):
  feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
  if label is not None:
    feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(source, out_dir, num_files=None, encoding="png"):
  """Writes `source` (in order, finished at its training size) as prepared data in `out_dir`.

  Args:
    source: an image `Source` (`tfadvgan.data.load(...)`), 8-bit or floating point.
    out_dir: a new or empty directory (any TensorFlow filesystem path).
    num_files: number of TFRecord files; None: one per `DEFAULT_EXAMPLES_PER_FILE` examples. A pod
      of P hosts wants at least P files (more is finer: file i goes to host i mod P).
    encoding: 'png' (lossless, smaller) or 'raw' (no decoding cost when read); floating point
      data is always written raw.

  Returns:
    The metadata dict written to `out_dir/tfadvgan_data.json`.

  Raises:
    ConfigError: 2-D point data, an unknown encoding, bad num_files, or `out_dir` already holding
      files.
  """
  errors.check(len(source.shape) == 3, f"Dataset {source.name!r} holds points of shape "
               f"{source.shape}, not images: 2-D toy data is generated at load time, train on it "
               "directly.")
  errors.choose("encoding", encoding, dict.fromkeys(ENCODINGS))
  num_files = errors.check_int("num_files", num_files, low=1, allow_none=True)
  errors.check(not storage.exists(out_dir) or not storage.listdir(out_dir),
               f"{out_dir} already exists and is not empty; choose a new --out directory (or "
               "delete it).")
  dtype = _stored_form(source)
  encoding = encoding if dtype == "uint8" else "raw"
  total = source.num_examples
  if total is None:
    total = int(source.records(1, 0, None).reduce(np.int64(0), lambda n, _: n + 1))
  num_files = num_files or max(1, math.ceil(total / DEFAULT_EXAMPLES_PER_FILE))
  errors.check(num_files <= total, f"num_files={num_files} is more than the {total} examples.")
  created = not storage.exists(out_dir)
  storage.makedirs(out_dir)
  bounds = [total * k // num_files for k in range(num_files + 1)]
  try:
    files, written = _write_files(source, out_dir, dtype, encoding, bounds)
    errors.check(written == total, f"{source.name!r} yielded {written} examples, not {total}.")
  except BaseException:  # leave no half-written directory behind
    if created:
      storage.rmtree(out_dir)
    else:
      for name in storage.listdir(out_dir):
        storage.remove(storage.join(out_dir, name))
    raise
  meta = {"format": FORMAT, "version": 1, "source": source.name, "num_examples": total,
          "shape": list(source.shape), "dtype": dtype, "encoding": encoding,
          "num_classes": int(source.num_classes), "files": files}
  storage.atomic_write(storage.join(out_dir, METADATA_FILE), json.dumps(meta, indent=1))
  return meta


def _write_files(source, out_dir, dtype, encoding, bounds):
  """Writes the examples into len(bounds) - 1 files (file k: examples [bounds[k], bounds[k+1]))."""
  num_files = len(bounds) - 1
  files, index, writer, written = [], -1, None, 0
  labelled = source.num_classes > 0
  for batch in _encoded_batches(source, dtype, encoding):
    data, labels = batch if labelled else (batch, None)
    for j, item in enumerate(data):
      while index < 0 or written >= bounds[index + 1]:
        if writer is not None:
          writer.close()
        index += 1
        name = _file_name(index, num_files)
        files.append({"name": name, "num_examples": bounds[index + 1] - bounds[index]})
        writer = tf.io.TFRecordWriter(storage.join(out_dir, name))
      writer.write(_example(item, labels[j] if labelled else None))
      written += 1
  if writer is not None:
    writer.close()
  return files, written


def read_metadata(path):
  """The checked metadata of a prepared-data directory (ConfigError naming what is wrong)."""
  meta_path = storage.join(path, METADATA_FILE)
  meta = storage.read_required_json(
      meta_path, f"dataset.path {path!r} holds no {METADATA_FILE}: it is not prepared data (or "
      "its preparation did not finish); write it with scripts/prepare_data.py.",
      "prepare the data again.")
  errors.check(isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("version") == 1,
               f"{meta_path} is not tfadvgan prepared-data metadata (format {FORMAT!r}, "
               "version 1); prepare the data again with scripts/prepare_data.py.")
  present = set(storage.listdir(path))
  missing = [f["name"] for f in meta["files"] if f["name"] not in present]
  errors.check(not missing, f"{path!r} is missing {len(missing)} of its {len(meta['files'])} "
               f"record files (first: {missing[:1]}); copy the whole directory again.")
  return meta


def _parser(meta):
  features = {"image": tf.io.FixedLenFeature([], tf.string)}
  if meta["num_classes"]:
    features["label"] = tf.io.FixedLenFeature([], tf.int64)

  def parse(serialized):
    ex = tf.io.parse_single_example(serialized, features)
    if meta["num_classes"]:
      return ex["image"], tf.cast(ex["label"], tf.int32)
    return ex["image"]

  return parse


def _decoder(meta):
  shape, dtype = meta["shape"], tf.as_dtype(meta["dtype"])

  def decode(data):
    if meta["encoding"] == "png":
      image = tf.io.decode_png(data, channels=shape[-1])
    else:
      image = tf.io.parse_tensor(data, dtype)
    return tf.ensure_shape(image, shape)

  return decode


@registry.register("tfrecord", splits=("train",), options=("path",))
def load_tfrecord(split, path):
  """Prepared data (`scripts/prepare_data.py`): one split per directory, read by file.

  Input pipeline i of P reads files i, i + P, ... in an order shuffled with the seed each epoch;
  with fewer files than pipelines every pipeline reads every file and keeps every P-th example
  (one warning line says so). Images come back exactly as written.
  """
  del split
  errors.check(path is not None, "Dataset 'tfrecord' needs dataset.path: a directory written by "
               "scripts/prepare_data.py.")
  meta = read_metadata(path)
  names = [storage.join(path, f["name"]) for f in meta["files"]]
  parse = _parser(meta)

  def records(num_shards, index, seed):
    by_file = num_shards <= len(names)
    if not by_file and index == 0:
      logging.warning("%s has %d record file(s) for %d input pipelines: every pipeline reads "
                      "every file and keeps 1/%d of the examples (decoding only those); prepare "
                      "the data with --num_files >= %d.", path, len(names), num_shards,
                      num_shards, num_shards)
    mine = names[index::num_shards] if by_file else names
    files = tf.data.Dataset.from_tensor_slices(mine)
    if seed is not None:
      files = files.shuffle(len(mine), seed=seed, reshuffle_each_iteration=True)
    # In order (no seed): one file after the other; training: 4 files read at once.
    cycle = 1 if seed is None else min(4, len(mine))
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=cycle,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds if by_file else sources.shard_examples(ds, num_shards, index)

  finish = transforms.to_unit_range if meta["dtype"] == "uint8" else (lambda x: x)
  return sources.Source(records, meta["num_classes"], tuple(meta["shape"]), "tfrecord",
                        decode=_decoder(meta), finish=finish, num_examples=meta["num_examples"],
                        max_examples=meta["num_examples"], file_shards=len(names))
