"""Step-time benchmark: the compiled train step of several configs, in one process, interleaved.

Each config is parsed on its own (gin is cleared in between), built, and fed one cached batch
repeated, so the input pipeline is out of the measurement. The first `warmup` calls of each config
(tracing and XLA compilation included) are not timed. Then rounds of `chunk` timed calls go to each
config in turn, so drifts of the machine's speed hit all of them alike. What is timed is exactly
the function training calls (`tfadvgan.training.engine.Engine.train_function`), synchronised after
every call.
"""

import inspect
import time

import gin
import numpy as np
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan import models
from tfadvgan.training import engine as engine_lib
from tfadvgan.training import loop


def _sync(outputs):
  logs, _ = outputs
  return {k: float(np.asarray(v)) for k, v in logs.items()}


def _caller(gan, iterator):
  """One compiled call of one train step, as training makes it."""
  engine = engine_lib.for_gan(gan)
  one, zero, no = tf.constant(1), tf.constant(0), tf.constant(False)
  return lambda: engine.train_function(iterator, one, zero, no)


def configured_mixed_precision():
  """`train.mixed_precision` as bound in gin, else `train`'s default (what training would use)."""
  try:
    value = gin.query_parameter("train.mixed_precision")
  except ValueError:
    value = inspect.signature(loop.train).parameters["mixed_precision"].default
  return models.check_mixed_precision(value)


def prepare(config_files, params, shape=None, batch_size=None, strategy="default"):
  """Builds one config's GAN and a cached distributed batch iterator.

  Returns:
    (gan, call, b): `call()` runs one compiled train step on the next batch.
  """
  from tfadvgan.cli import common  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  common.parse_gin(config_files, params)
  strategy_obj = distribute.make_strategy(strategy)
  b = batch_size or gin.query_parameter("train.batch_size")
  try:
    source = data_lib.load()
  except errors.ConfigError:
    errors.check(shape is not None, "The config's dataset is not available here: pass "
                 "--shape=H,W,C to benchmark on random data of that shape.")
    n = 4 * b * 8
    images = np.random.default_rng(0).uniform(-1, 1, (n,) + tuple(shape)).astype(np.float32)
    labels = np.arange(n) % 10
    source = data_lib.from_arrays(images, labels)
  gan = loop.build_gan(source.shape, source.num_classes, strategy=strategy_obj,
                       mixed_precision=configured_mixed_precision())
  ds = data_lib.make_train_dataset(source, batch_size=b, n_dis=gan.n_dis,
                                   latent_dim=gan.generator.latent_dim,
                                   conditional=gan.conditional, seed=0)
  ds = ds.take(1).cache().repeat()
  iterator = iter(strategy_obj.experimental_distribute_dataset(ds))
  return gan, _caller(gan, iterator), b


def run(configs, steps=50, warmup=5, chunk=5, shape=None, batch_size=None, strategy="default"):
  """Times each config. `configs` is a list of (name, [gin files], [gin params]).

  Returns:
    A list of dicts with name, median/min/max ms per step, images/s, ratio_to_first, and the
    settings (batch size, n_dis, jit, replicas).
  """
  errors.check(steps >= 1 and warmup >= 1 and chunk >= 1,
               "--steps, --warmup and --chunk must be >= 1 (warm-up includes compilation).")
  built = []
  for name, files, params in configs:
    gan, call, b = prepare(files, params, shape, batch_size, strategy)
    for _ in range(warmup):
      _sync(call())
    built.append((name, gan, call, b, []))
  remaining = steps
  while remaining > 0:
    n = min(chunk, remaining)
    for _, gan, call, _, times in built:
      for _ in range(n):
        t0 = time.perf_counter()
        _sync(call())
        times.append(time.perf_counter() - t0)
    remaining -= n
  results = []
  for name, gan, _, b, times in built:
    ms = 1000.0 * np.asarray(times)
    # Each train step reads n_dis * batch real images.
    results.append({
        "name": name, "median_ms_per_step": float(np.median(ms)), "min_ms_per_step":
        float(ms.min()), "max_ms_per_step": float(ms.max()), "steps": len(times),
        "images_per_sec": float(b * gan.n_dis * 1000.0 / np.median(ms)),
        "batch_size": int(b), "n_dis": int(gan.n_dis), "jit_compile": bool(gan.jit_compile),
        "replicas": int(gan.distribute_strategy.num_replicas_in_sync),
        "method": gan.method_name, "mixed_precision": gan.mixed_precision})
  first = results[0]["median_ms_per_step"]
  for r in results:
    r["ratio_to_first"] = r["median_ms_per_step"] / first
  return results


def end_to_end(config_files, params, steps=50, warmup=10, chunk=5, model_dir=None):
  """ms per step of real training: `loop.train` with the config's input pipeline and callbacks.

  Trains `warmup + steps` steps (logging every `chunk`) into `model_dir` (a temporary directory by
  default, deleted afterwards) and returns the median of the `perf/ms_per_step` windows after the
  first `warmup` steps (each window is the wall time between two log points divided by its steps,
  so the input pipeline, the host loop and every callback firing inside it count).

  Returns:
    dict: `end_to_end_ms_per_step` (median), `end_to_end_windows` (how many).
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  from tfadvgan.cli import common  # pylint: disable=g-import-not-at-top
  errors.check(steps >= chunk and warmup >= chunk and chunk >= 1,
               "end_to_end needs --steps and --warmup of at least --chunk (>= 1).")
  gin.clear_config()
  common.parse_gin(config_files, list(params) + [
      f"train.num_steps = {warmup + steps}", f"train.log_every_steps = {chunk}",
      "train.verbose = 0"])
  owned = model_dir is None  # a local scratch directory (tempfile), removed through gfile
  model_dir = model_dir or tempfile.mkdtemp(prefix="tfadvgan_e2e_")
  try:
    loop.train(model_dir)
    windows = [value for step, value in read_scalars(io.join(model_dir, "train"),
                                                     "perf/ms_per_step") if step > warmup]
  finally:
    if owned and io.exists(model_dir):
      io.rmtree(model_dir)
  errors.check(windows, "end_to_end: training logged no timing window after the warm-up.")
  return {"end_to_end_ms_per_step": float(np.median(windows)),
          "end_to_end_windows": len(windows)}


def read_scalars(log_dir, tag):
  """[(step, value)] of one scalar tag in the TensorBoard event files of `log_dir`."""
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  points = []
  for name in sorted(io.listdir(log_dir)):
    if name.startswith("events"):
      for record in tf.data.TFRecordDataset(io.join(log_dir, name)):
        event = tf.compat.v1.Event.FromString(record.numpy())  # summary_iterator, undeprecated
        for value in event.summary.value:
          if value.tag == tag:
            points.append((event.step, float(tf.make_ndarray(value.tensor))))
  return sorted(points)


def format_table(results):
  head = f"{'config':40s} {'median ms':>10s} {'min':>8s} {'max':>8s} {'img/s':>9s} {'ratio':>6s}"
  rows = [head, "-" * len(head)]
  for r in results:
    rows.append(f"{r['name'][:40]:40s} {r['median_ms_per_step']:10.2f} "
                f"{r['min_ms_per_step']:8.2f} {r['max_ms_per_step']:8.2f} "
                f"{r['images_per_sec']:9.1f} {r['ratio_to_first']:6.2f}")
  return "\n".join(rows)
