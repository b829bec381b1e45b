"""The `Source` type, and `from_arrays`, which builds one from numpy arrays.

A `Source` is a finite, unbatched, unshuffled dataset of float32 images in [-1, 1] (or 2-D
points), paired with int32 labels when the data has them, read in three stages so that a host
decodes only its shard. Named sources (`"cifar10"`, `"idx"`, `"ring"`, ...) and `load`, the one
entry point for datasets, are in `tfadvgan.data.registry`.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import transforms

AUTOTUNE = tf.data.AUTOTUNE


def _identity(x):
  return x


@dataclasses.dataclass(frozen=True)
class Source:
  """A dataset of single examples, built in three stages so that a host decodes only its shard.

  `records(num_shards, index, seed)` -> undecoded records of shard `index` of `num_shards`
  (file names, encoded bytes or in-memory arrays: cheap to read). Each element is `record` or
  `(record, label)` with an int32 scalar label. File-backed sources shard by file where they
  can; all shard before `decode`.
  `decode(record)` -> the stored image: what the pipeline caches (uint8 where the data is 8-bit,
  already cropped and resized where that shrinks it; float32 for floating point data and points).
  `finish(images)` -> float32 in [-1, 1] of shape `shape`; it takes one stored image `[h, w, c]`
  or a batch `[n, h, w, c]` (or points), and is cheap: the pipeline runs it once per batch after
  the cache.

  Attributes:
    records, decode, finish: the three stages above.
    num_classes: number of classes, 0 when there are no labels.
    shape: `(H, W, C)` of finished images, `(2,)` for 2-D toy points.
    name: the source name, for messages and logs.
    num_examples: the exact number of examples when known without reading them, else None.
    max_examples: an upper bound on it (for memory estimates), or None.
    file_shards: how many files `records` shards by (0: it shards by example).
  """
  records: object
  num_classes: int
  shape: tuple
  name: str
  decode: object = _identity
  finish: object = _identity
  num_examples: object = None
  max_examples: object = None
  file_shards: int = 0

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def stored(self, num_shards=1, index=0, seed=None):
    """The decoded, unfinished examples of one shard (what the training pipeline caches); `seed`
    None reads files in order, an integer shuffles the file order with it (each epoch anew)."""
    ds = self.records(num_shards, index, seed)
    decode = self.decode
    if self.num_classes > 0:
      return ds.map(lambda r, y: (decode(r), y), num_parallel_calls=AUTOTUNE)
    return ds.map(decode, num_parallel_calls=AUTOTUNE)

  def finish_batch(self, images, labels=None):
    """`finish` on a batch of stored examples (`images`, or `images, labels`: labels pass)."""
    if labels is not None:
      return self.finish(images), labels
    return self.finish(images)

  @property
  def images(self):
    """The whole source, finished, one example at a time, in order."""
    ds = self.stored().batch(CONVERT_CHUNK).map(self.finish_batch,
                                                 num_parallel_calls=AUTOTUNE).unbatch()
    if self.num_examples is not None:
      ds = ds.apply(tf.data.experimental.assert_cardinality(self.num_examples))
    return ds

  def apply(self, fn):
    """A Source whose examples are `fn(stored examples)` (e.g. `lambda d: d.take(100)`), in order.

    It then shards by example: every shard reads all records of this source, and decodes them.
    """
    def records(num_shards, index, seed):
      del seed
      ds = fn(self.stored())
      return ds.shard(num_shards, index) if num_shards > 1 else ds
    return self.replace(records=records, decode=_identity, num_examples=None, file_shards=0)


def shard_examples(ds, num_shards, index):
  """Example-level sharding (every `num_shards`-th example from `index`); identity for one."""
  return ds.shard(num_shards, index) if num_shards > 1 else ds


def _check_images_array(images, name):
  """Validates an image/point array; returns (array, kind) with kind 'uint8', 'float', 'points'.

  Images are `[N, H, W, C]` (C in 1 or 3) or `[N, H, W]`, uint8 in [0, 255] or floating point in
  [-1, 1]; points are floating point `[N, D]`.
  """
  images = np.asarray(images)
  errors.check(
      images.ndim in (2, 3, 4),
      f"{name}: images must have shape [N, H, W, C], [N, H, W] or (points) [N, D]; got shape "
      f"{images.shape}.")
  errors.check(images.shape[0] > 0, f"{name}: there are no images (0 examples); check the data.")
  is_float = np.issubdtype(images.dtype, np.floating)
  errors.check(
      images.dtype == np.uint8 or is_float,
      f"{name}: images must be uint8 in [0, 255] or float in [-1, 1]; got dtype {images.dtype}.")
  if images.ndim == 2:
    errors.check(is_float, f"{name}: 2-D point arrays [N, D] must be floating point, got "
                 f"{images.dtype}.")
    return images.astype(np.float32), "points"
  if images.ndim == 3:
    images = images[..., None]
  errors.check(images.shape[-1] in (1, 3),
               f"{name}: images must have 1 or 3 channels (NHWC), got shape {images.shape}.")
  if is_float:
    finite = np.isfinite(images).all()
    lo, hi = (float(images.min()), float(images.max())) if finite else (np.nan, np.nan)
    errors.check(
        finite and lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6,
        f"{name}: float images must lie in [-1, 1], got range [{lo}, {hi}]. Rescale them "
        f"(x / 127.5 - 1 for 0..255 data) or store uint8 0..255.")
    return np.clip(images, -1.0, 1.0).astype(np.float32), "float"
  return images, "uint8"


def _check_labels_array(labels, n, name, num_classes=None):
  """Validates labels `[N]` of an integer dtype; returns (int32 array, num_classes)."""
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  errors.check(labels.ndim == 1 and labels.shape[0] == n,
               f"{name}: labels must have shape [{n}] (one per image), got {labels.shape}.")
  errors.check(np.issubdtype(labels.dtype, np.integer),
               f"{name}: labels must be integers, got dtype {labels.dtype}.")
  errors.check(labels.min() >= 0, f"{name}: labels must be >= 0, got {labels.min()}.")
  if num_classes is None:
    num_classes = int(labels.max()) + 1
  errors.check(labels.max() < num_classes,
               f"{name}: labels must be < num_classes={num_classes}, got {labels.max()}.")
  return labels.astype(np.int32), int(num_classes)


CONVERT_CHUNK = 256  # examples finished by one op in `Source.images`


def from_arrays(images, labels=None, name="arrays", num_classes=None, resolution=None, pad_to=None):
  """Builds a `Source` from numpy arrays.

  Value detection: uint8 images are taken as 0..255 and mapped by `x / 127.5 - 1`; floating
  point images must already lie in [-1, 1] (anything else is rejected, since [0, 1] and
  [-1, 1] data cannot be told apart reliably). Floating point `[N, D]` arrays are points (toy
  data) and are passed through as float32.

  Args:
    images: `[N, H, W, C]` (C in 1, 3), `[N, H, W]` (one channel added) or points `[N, D]`.
    labels: Optional integer labels `[N]`.
    name: Source name.
    num_classes: Number of classes; defaults to `max(labels) + 1`.
    resolution: Optional output side length (bilinear, antialiased resize).
    pad_to: Optional side length to pad to with -1 (before `resolution`).

  Returns:
    A `Source` sharded by example; uint8 data stays uint8 in memory (and in the pipeline's
    cache) and is converted by `finish` one batch at a time, after the cache (one op per batch
    rather than per example: the first epoch's pipeline cost 7 ms of CPU per batch of 64
    converted per example, 1.6 ms in chunks; docs/results/performance.md, "End to end
    against the isolated step").
  """
  images, kind = _check_images_array(images, name)
  n = images.shape[0]
  if labels is not None:
    labels, num_classes = _check_labels_array(labels, n, name, num_classes)
  else:
    num_classes = 0

  def finish(x):  # one image [H, W, C] or a batch [n, H, W, C] of stored (raw) images
    if kind == "uint8":
      x = transforms.to_unit_range(x)
    if pad_to is not None:
      x = transforms.pad_to(x, pad_to)
    return transforms.maybe_resize(x, resolution)

  arrays = images if labels is None else (images, labels)

  def records(num_shards, index, seed):
    del seed  # in memory: the training pipeline's shuffle buffer does the shuffling
    return shard_examples(tf.data.Dataset.from_tensor_slices(arrays), num_shards, index)

  if kind == "points":
    shape = tuple(images.shape[1:])
    finish = _identity
  else:
    shape = tuple(finish(tf.zeros((1,) + images.shape[1:], images.dtype)).shape[1:].as_list())
  return Source(records, num_classes, shape, name, finish=finish, num_examples=n, max_examples=n)
