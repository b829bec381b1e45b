"""Training and evaluation input pipelines built from a `Source`.

The training pipeline is infinite and yields one dict per global batch (see BUILD_NOTES.md,
"Data"): real examples grouped as `[B, n_dis, ...]` so that discriminator update k uses slice
`[:, k]` on every replica, plus stateless noise derived from `(seed, batch index)`.
"""
import gin
import tensorflow as tf

from tfadvgan import errors

AUTOTUNE = tf.data.AUTOTUNE

# Sub-streams of the per-batch key, one per random tensor.
_Z_D, _Z_G, _Y_D, _Y_G = range(4)


def _positive_int(value, name):
  errors.check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
               f"{name} must be a positive integer, got {value!r}.")


@gin.configurable
def make_train_dataset(source,
                       batch_size,
                       n_dis=1,
                       latent_dim=100,
                       num_classes=None,
                       seed=0,
                       conditional=False,
                       shuffle_buffer=10000,
                       cache=True,
                       method=None):
  """Builds the infinite training pipeline consumed by `GAN.train_step`.

  Order: cache, shuffle (seeded, reshuffled each epoch), repeat, group `n_dis` consecutive
  examples, batch `batch_size` groups (both with `drop_remainder=True`), add noise, prefetch.

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
    cache: True caches the decoded examples in memory, a string caches them in that file
      prefix, False disables caching (use False or a file for LSUN/ImageNet).
    method: Optional method name, only used in error messages.

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
  _positive_int(batch_size, "batch_size")
  _positive_int(n_dis, "n_dis")
  _positive_int(latent_dim, "latent_dim")
  _positive_int(shuffle_buffer, "shuffle_buffer")
  errors.check(isinstance(seed, int), f"seed must be an integer, got {seed!r}.")
  has_labels = source.num_classes > 0
  if conditional:
    errors.check(
        has_labels,
        f"Method {method or '(conditional=True)'} is class-conditional but dataset "
        f"{source.name!r} has no labels; use a labelled dataset or an unconditional method.")
    errors.check(
        not num_classes or num_classes == source.num_classes,
        f"num_classes={num_classes} does not match dataset {source.name!r}, which has "
        f"{source.num_classes} classes; unset num_classes or set it to {source.num_classes}.")
  num_classes = source.num_classes

  ds = source.images
  if cache:
    ds = ds.cache(cache) if isinstance(cache, str) else ds.cache()
  ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.batch(n_dis, drop_remainder=True).batch(batch_size, drop_remainder=True)

  def add_noise(index, batch):
    if has_labels:
      images, labels = batch
      out = {"images": images, "labels": tf.cast(labels, tf.int32)}
    else:
      out = {"images": batch}
    keys = tf.random.experimental.stateless_split(
        tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)]), num=4)
    out["z_d"] = tf.random.stateless_normal([batch_size, n_dis, latent_dim], keys[_Z_D])
    out["z_g"] = tf.random.stateless_normal([batch_size, latent_dim], keys[_Z_G])
    if conditional:
      out["y_d"] = tf.random.stateless_uniform([batch_size, n_dis], keys[_Y_D], minval=0,
                                               maxval=num_classes, dtype=tf.int32)
      out["y_g"] = tf.random.stateless_uniform([batch_size], keys[_Y_G], minval=0,
                                               maxval=num_classes, dtype=tf.int32)
    return out

  ds = ds.enumerate().map(add_noise, num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)


def make_eval_dataset(source, batch_size):
  """Batches a source in order for evaluation: no shuffle, no repeat, last batch kept.

  Args:
    source: A `tfadvgan.data.Source`.
    batch_size: Batch size.

  Returns:
    A finite `tf.data.Dataset` of dicts `{"images": [b, *shape]}` plus `"labels"` int32 `[b]`
    when the source has labels (`b <= batch_size`; the batch dimension is not static).
  """
  _positive_int(batch_size, "batch_size")
  ds = source.images.batch(batch_size, drop_remainder=False)
  if source.num_classes > 0:
    ds = ds.map(lambda x, y: {"images": x, "labels": tf.cast(y, tf.int32)},
                num_parallel_calls=AUTOTUNE)
  else:
    ds = ds.map(lambda x: {"images": x}, num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)
