"""Training and evaluation input pipelines built from a `Source`.

The training pipeline is infinite and yields one dict per global batch (see docs/design.md,
"Data"): real examples grouped as `[B, n_dis, ...]` so that discriminator update k uses slice
`[:, k]` on every replica, plus stateless noise derived from `(seed, batch index)`.
"""
import dataclasses
import functools
import os

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors

AUTOTUNE = tf.data.AUTOTUNE

# Sub-streams of the per-batch key, one per random tensor.
_Z_D, _Z_G, _Y_D, _Y_G = range(4)


@gin.configurable
def make_train_dataset(source, batch_size, n_dis=1, latent_dim=100, num_classes=None, seed=0,
                       conditional=False, shuffle_buffer=10000, cache="auto",
                       cache_memory_limit=None, method=None, input_context=None,
                       input_shards=None):
  """Builds the infinite training pipeline consumed by `GAN.train_step`.

  Order: read this pipeline's shard of the records, decode, cache (the stored form: uint8 for
  8-bit data), shuffle (seeded, reshuffled each epoch), repeat, group `n_dis` consecutive
  examples, batch (both with `drop_remainder=True`), finish (to float32 in [-1, 1], one op per
  batch), add noise, split per replica, prefetch. Which shard each pipeline reads and which rows
  of the global batch it yields: `_Layout` (input sharding, multi-worker and TPU pods).

  Args:
    source: A `tfadvgan.data.Source`.
    batch_size: Global batch size B.
    n_dis: Discriminator steps per generator step (real samples per batch row).
    latent_dim: Size of the noise vectors.
    num_classes: Number of classes for the fake labels; None (or 0) uses `source.num_classes`.
      With `conditional=True` it must match the source.
    seed: Seed of the shuffle and of the noise; equal seeds give identical streams.
    conditional: Whether to add uniform fake labels `y_d`, `y_g` (needs a labelled source).
    shuffle_buffer: Shuffle buffer size (examples).
    cache: 'auto' caches this pipeline's decoded shard in memory when its estimated size
      (`cache_size_bytes`) fits `cache_memory_limit`, else does not cache it and says so in one
      warning line; True caches in memory regardless; a string caches in that file prefix (one
      file per shard); False disables caching.
    cache_memory_limit: bytes the in-memory cache of one pipeline may take with
      `cache='auto'`; None means a quarter of this host's physical memory.
    method: Optional method name, only used in error messages.
    input_context: Optional `tf.distribute.InputContext`: build only this input pipeline's part
      (see `_Layout`); elements are then per-replica batches.
    input_shards: Optional P for a single-process pipeline that reproduces the data order of P
      input pipelines (global batches; ignored with `input_context`).

  Returns:
    An infinite `tf.data.Dataset` of dicts with static shapes:
      `images` float32 `[B, n_dis, *source.shape]`,
      `labels` int32 `[B, n_dis]` (only when the source has labels),
      `z_d` float32 `[B, n_dis, latent_dim]`, `z_g` float32 `[B, latent_dim]` (N(0, 1)),
      `y_d` int32 `[B, n_dis]`, `y_g` int32 `[B]` uniform in `[0, num_classes)` (only when
      `conditional`).

  Raises:
    ConfigError: bad sizes, or `conditional` on a source without labels.
  """
  batch_size = errors.check_int("batch_size", batch_size, low=1)
  n_dis = errors.check_int("n_dis", n_dis, low=1)
  latent_dim = errors.check_int("latent_dim", latent_dim, low=1)
  shuffle_buffer = errors.check_int("shuffle_buffer", shuffle_buffer, low=1)
  seed = errors.check_int("seed", seed)
  _check_cache(cache, cache_memory_limit)
  _check_classes(source, conditional, num_classes, method)
  layout = _layout(batch_size, input_context, input_shards)
  ds = _real_batches(source, layout, n_dis, seed, shuffle_buffer, cache, cache_memory_limit)
  noise = functools.partial(draw_noise, seed, batch_size=batch_size, n_dis=n_dis,
                            latent_dim=latent_dim, num_classes=conditional and source.num_classes)
  ds = ds.enumerate().map(lambda i, b: _add_noise(source.num_classes > 0, noise, layout, i, b),
                          num_parallel_calls=AUTOTUNE)
  return _split_per_replica(ds, layout).prefetch(AUTOTUNE)


def _check_cache(cache, cache_memory_limit):
  errors.check(cache in (True, False, "auto") or (isinstance(cache, str) and cache),
               f"make_train_dataset.cache must be 'auto', True, False or a file prefix; got "
               f"{cache!r}.")
  errors.check_int("make_train_dataset.cache_memory_limit", cache_memory_limit, low=0,
                   allow_none=True)


def _check_classes(source, conditional, num_classes, method):
  """Fake labels need a labelled source, with the class count the user may have set."""
  if conditional:
    errors.require_labels(source.num_classes > 0, method or "(conditional=True)", source.name)
    errors.check(
        not num_classes or num_classes == source.num_classes,
        f"num_classes={num_classes} does not match dataset {source.name!r}, which has "
        f"{source.num_classes} classes; unset num_classes or set it to {source.num_classes}.")


@dataclasses.dataclass(frozen=True)
class _Layout:
  """Which shards one input pipeline reads, and which rows of each global batch it yields.

  Input sharding (multi-worker, TPU pods). With an `input_context` (a `tf.distribute.InputContext`,
  from `strategy.distribute_datasets_from_function`), input pipeline i of P reads and decodes
  only its shard of the source: files i, i + P, ... of a file-backed source (TFDS, `tfrecord`,
  the files of a `folder`), whose file order it shuffles with the seed each epoch, or every P-th
  example of an in-memory one (`Source.records`). It shuffles its shard and yields the rows
  `[i * B/P, (i + 1) * B/P)` of each global batch, split into one element per local replica (the
  strategy hands consecutive elements to consecutive local replicas). The noise is drawn for the
  whole global batch from `(seed, batch index)` and sliced, so z and fake labels never depend on P
  or on the replica count. With one pipeline (one host, any number of devices) the global batches
  are exactly those of a one-device run. With P pipelines the real examples of step s are those of
  shard-wise shuffles; `input_shards = P` reproduces that order in a single process (the global
  batch is then the concatenation of the P shards' rows).
  """
  shards: int  # P
  shard: object  # this pipeline's shard; None: it builds whole global batches from all P shards
  local_replicas: int  # replicas this pipeline feeds (consecutive elements)
  rows: int  # rows of each global batch that one shard provides
  first_row: int  # this pipeline's rows of the global batch: [first_row, first_row + noise_rows)
  noise_rows: int


def _layout(batch_size, input_context, input_shards):
  local_replicas = 1
  if input_context is not None:
    local_replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
  if input_context is not None and input_context.num_input_pipelines > 1:
    shards, shard = input_context.num_input_pipelines, input_context.input_pipeline_id
  else:  # this pipeline builds whole global batches (from `input_shards` shards, if set)
    shards = errors.check_int("make_train_dataset.input_shards", input_shards or 1, low=1)
    shard = None
  errors.check(batch_size % (shards * local_replicas) == 0,
               f"train.batch_size={batch_size} must divide by the {shards} input shard(s) x "
               f"{local_replicas} replica(s) per input pipeline.")
  rows = batch_size // shards
  first_row, noise_rows = (0, batch_size) if shard is None else (shard * rows, rows)
  return _Layout(shards, shard, local_replicas, rows, first_row, noise_rows)


def _real_batches(source, layout, n_dis, seed, shuffle_buffer, cache, cache_memory_limit):
  """This pipeline's batches of real examples, `[rows, n_dis, ...]` (labels alongside)."""

  def shard_batches(index):
    ds = source.stored(layout.shards, index, seed)
    ds = _cache(ds, source, layout.shards, index, cache, cache_memory_limit)
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(n_dis, drop_remainder=True).batch(layout.rows, drop_remainder=True)
    return ds.map(lambda *batch: _finish(source, batch), num_parallel_calls=AUTOTUNE)

  if layout.shard is not None:
    return shard_batches(layout.shard)
  # the global batch: the P shards' rows, concatenated in shard order
  ds = tf.data.Dataset.zip(tuple(shard_batches(i) for i in range(layout.shards)))
  return ds.map(lambda *parts: tf.nest.map_structure(lambda *p: tf.concat(p, 0), *parts))


def _add_noise(has_labels, noise, layout, index, batch):
  """The element dict of batch `index`: reals, labels, and this pipeline's rows of the noise."""
  if has_labels:
    images, labels = batch
    out = {"images": images, "labels": tf.cast(labels, tf.int32)}
  else:
    out = {"images": batch}
  rows = slice(layout.first_row, layout.first_row + layout.noise_rows)
  out.update({k: v[rows] for k, v in noise(index).items()})
  return out


def _split_per_replica(ds, layout):
  """One element per local replica (consecutive rows), when the pipeline feeds several."""
  if layout.local_replicas <= 1:
    return ds
  per_replica = layout.noise_rows // layout.local_replicas
  return ds.flat_map(lambda b: tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(
      lambda v: tf.reshape(v, [layout.local_replicas, per_replica] + v.shape[1:].as_list()), b)))


def draw_noise(seed, index, batch_size, n_dis, latent_dim, num_classes=0):
  """The noise of global batch `index` of a run seeded `seed` (this pipeline's, and that
  `tfadvgan.data.train_batches` adds to a user's batches): stateless, equal `(seed, index)` give
  equal noise. Drawn by tf.data on the host: XLA's samplers give other values from the same seeds.

  Returns:
    {"z_d": float32 [B, n_dis, latent_dim], "z_g": float32 [B, latent_dim]} (N(0, 1)), plus
    {"y_d": int32 [B, n_dis], "y_g": int32 [B]} uniform in [0, num_classes) when num_classes > 0.
  """
  keys = tf.random.experimental.stateless_split(
      tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)]), num=4)
  out = {"z_d": tf.random.stateless_normal([batch_size, n_dis, latent_dim], keys[_Z_D]),
         "z_g": tf.random.stateless_normal([batch_size, latent_dim], keys[_Z_G])}
  if num_classes:
    out["y_d"] = tf.random.stateless_uniform([batch_size, n_dis], keys[_Y_D], minval=0,
                                             maxval=num_classes, dtype=tf.int32)
    out["y_g"] = tf.random.stateless_uniform([batch_size], keys[_Y_G], minval=0,
                                             maxval=num_classes, dtype=tf.int32)
  return out


def _finish(source, batch):
  """`source.finish` on a `[rows, n_dis, ...]` batch of stored examples (labels pass through)."""
  images = batch[0]
  lead = tf.shape(images)[:2]
  flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], 0))
  flat.set_shape([None] + images.shape[2:].as_list())
  done = source.finish(flat)
  images = tf.reshape(done, tf.concat([lead, tf.shape(done)[1:]], 0))
  images.set_shape(batch[0].shape[:2].concatenate(source.shape))
  return (images,) + tuple(batch[1:]) if len(batch) > 1 else images


def cache_size_bytes(source, num_shards=1):
  """Estimated bytes of one pipeline's decoded shard: ceil(N / P) x bytes of a stored example
  (N: `source.max_examples`); None when N is unknown."""
  if source.max_examples is None:
    return None
  spec = source.stored().element_spec
  spec = spec[0] if source.num_classes > 0 else spec
  per_example = spec.dtype.size * int(np.prod(spec.shape.as_list()))
  return -(-source.max_examples // num_shards) * per_example


def default_cache_memory_limit():
  """A quarter of this host's physical memory, in bytes."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def _bytes_text(n):
  for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
    if n >= scale:
      return f"{n / scale:.1f} {unit}"
  return f"{n} bytes"


def _cache(ds, source, shards, index, cache, memory_limit):
  """Applies the `cache` choice of `make_train_dataset` to one pipeline's decoded shard."""
  if isinstance(cache, str) and cache != "auto":  # one cache file per shard
    return ds.cache(f"{cache}-shard{index}" if shards > 1 else cache)
  if cache == "auto":
    size = cache_size_bytes(source, shards)
    limit = default_cache_memory_limit() if memory_limit is None else memory_limit
    if size is not None and size > limit:
      if index == 0:  # one line per run: pipeline 0 (the chief's, or input_shards' first)
        logging.warning(
            "Not caching the decoded data in memory: one input pipeline's shard of %r needs about "
            "%s (%d examples / %d pipeline(s)), over make_train_dataset.cache_memory_limit = %s, "
            "so every epoch decodes it again. Raise the limit, or set make_train_dataset.cache "
            "to a local file prefix.", source.name, _bytes_text(size), source.max_examples,
            shards, _bytes_text(limit))
      return ds
    return ds.cache()
  return ds.cache() if cache else ds


def make_eval_dataset(source, batch_size):
  """Batches a source in order for evaluation: no shuffle, no repeat, last batch kept.

  Args:
    source: A `tfadvgan.data.Source`.
    batch_size: Batch size.

  Returns:
    A finite `tf.data.Dataset` of dicts `{"images": [b, *shape]}` plus `"labels"` int32 `[b]`
    when the source has labels (`b <= batch_size`; the batch dimension is not static).
  """
  batch_size = errors.check_int("batch_size", batch_size, low=1)
  ds = source.stored().batch(batch_size, drop_remainder=False).map(
      source.finish_batch, num_parallel_calls=AUTOTUNE)
  if source.num_classes > 0:
    ds = ds.map(lambda x, y: {"images": x, "labels": tf.cast(y, tf.int32)},
                num_parallel_calls=AUTOTUNE)
  else:
    ds = ds.map(lambda x: {"images": x}, num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)
