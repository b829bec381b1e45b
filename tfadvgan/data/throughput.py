"""Measurements of the input path (`scripts/benchmark.py --input`): decodes per trained image for
P input pipelines, pipeline images/s on one core, and the folder source's start-up time.

Written here rather than taken from tf.data's own tooling: tf.data's statistics report time per
transformation, not how many images a sharded pipeline decodes for each one it yields.
"""
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfadvgan.data import pipeline
from tfadvgan.data import registry


class DecodeCounter:
  """Counts the decodes a Source runs: `counter.wrap(source)` is the source, counted."""

  def __init__(self):
    self.count = 0

  def _tick(self):
    self.count += 1
    return np.int64(0)

  def wrap(self, source):
    decode = source.decode

    def counted(record):
      tick = tf.py_function(self._tick, [], tf.int64)
      with tf.control_dependencies([tick]):
        return tf.identity(decode(record))

    return source.replace(decode=counted)


def write_image_folder(path, num_images, size=64, image_format="png", seed=0):
  """Writes `num_images` smooth random RGB images (`size` px, 'png' or 'jpeg') into `path`."""
  encode = tf.io.encode_png if image_format == "png" else tf.io.encode_jpeg
  tf.io.gfile.makedirs(path)

  def make(i):
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(i, tf.int64)])
    coarse = tf.random.stateless_uniform([1, size // 8, size // 8, 3], key, 0, 255)
    image = tf.image.resize(coarse, [size, size])[0]
    image += tf.random.stateless_normal([size, size, 3], key + 1, stddev=8)
    return i, encode(tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8))

  ds = tf.data.Dataset.range(num_images).map(make, num_parallel_calls=tf.data.AUTOTUNE)
  for i, data in ds.as_numpy_iterator():
    with tf.io.gfile.GFile(os.path.join(path, f"{i:06d}.{image_format}"), "wb") as f:
      f.write(data)


def decodes_per_trained_image(source, num_shards, passes=10, rows_per_pipeline=16):
  """Images decoded / images trained on, for each of `num_shards` input pipelines (cache off),
  over `passes` whole passes of each pipeline's shard."""
  ratios = []
  for index in range(num_shards):
    counter = DecodeCounter()
    context = tf.distribute.InputContext(num_input_pipelines=num_shards,
                                         input_pipeline_id=index, num_replicas_in_sync=num_shards)
    ds = pipeline.make_train_dataset(counter.wrap(source), rows_per_pipeline * num_shards,
                                     latent_dim=1, cache=False, shuffle_buffer=rows_per_pipeline,
                                     input_context=context)
    shard = len(range(index, source.num_examples, num_shards))
    batches = passes * shard // rows_per_pipeline
    iterator = iter(ds)
    for _ in range(batches):
      next(iterator)
    ratios.append(counter.count / (batches * rows_per_pipeline))
  return ratios


def images_per_second_one_core(source, num_images):
  """Images/s of `source`'s decode and finish on one tf.data thread (cache off)."""
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  ds = source.stored(1, 0, seed=0).repeat().batch(64).map(source.finish_batch)
  ds = ds.with_options(options)
  iterator = iter(ds)
  next(iterator)  # warm-up
  batches = max(1, num_images // 64)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * 64 / (time.perf_counter() - start)


def folder_startup_seconds(path, resolution=None):
  """Seconds `load('folder')` takes on this folder: the first start (empty check cache), then
  the second. Uses a private cache directory."""
  saved = os.environ.get("TFADVGAN_CACHE_DIR")
  os.environ["TFADVGAN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfadvgan-bench-cache-")
  try:
    times = []
    for _ in range(2):
      start = time.perf_counter()
      registry.load(source="folder", path=path, resolution=resolution)
      times.append(time.perf_counter() - start)
  finally:
    if saved is None:
      os.environ.pop("TFADVGAN_CACHE_DIR", None)
    else:
      os.environ["TFADVGAN_CACHE_DIR"] = saved
  return times


def input_benchmark(work_dir, shards=(1, 2, 4), ratio_images=512, speed_images=2048,
                    startup_images=20000, size=64):
  """The input-path figures on generated folders under `work_dir`.

  The figures measured with it: docs/results/performance.md, "Input path figures".

  Returns:
    A dict: `decodes_per_trained[P]` (mean over the P pipelines), `images_per_s_one_core`
    per format, and `startup_s` [first, second] for a `startup_images`-image PNG folder.
  """
  out = {"decodes_per_trained": {}, "images_per_s_one_core": {}, "size": size}
  ratio_dir = os.path.join(work_dir, f"ratio_{ratio_images}")
  if not tf.io.gfile.exists(ratio_dir):
    write_image_folder(ratio_dir, ratio_images, size, "png", seed=1)
  source = registry.load(source="folder", path=ratio_dir)
  for p in shards:
    out["decodes_per_trained"][p] = float(np.mean(decodes_per_trained_image(source, p)))
  for image_format in ("png", "jpeg"):
    path = os.path.join(work_dir, f"speed_{image_format}_{speed_images}")
    if not tf.io.gfile.exists(path):
      write_image_folder(path, speed_images, size, image_format, seed=2)
    out["images_per_s_one_core"][image_format] = images_per_second_one_core(
        registry.load(source="folder", path=path), speed_images)
  if startup_images:
    path = os.path.join(work_dir, f"startup_{startup_images}")
    if not tf.io.gfile.exists(path):
      write_image_folder(path, startup_images, size, "png", seed=3)
    out["startup_s"] = folder_startup_seconds(path)
    out["startup_images"] = startup_images
  return out


def format_input_benchmark(result):
  lines = [f"input pipelines (folder of {result['size']} px images, cache off):"]
  for p, ratio in result["decodes_per_trained"].items():
    lines.append(f"  P = {p}: {ratio:.3f} images decoded per image trained on (mean over "
                 "pipelines)")
  for image_format, rate in result["images_per_s_one_core"].items():
    lines.append(f"  {image_format}: {rate:.0f} images/s on one core (read, decode, finish)")
  if "startup_s" in result:
    first, second = result["startup_s"]
    lines.append(f"  start-up, {result['startup_images']} images: first {first:.1f} s, "
                 f"second {second:.1f} s (folder check cached)")
  return "\n".join(lines)
