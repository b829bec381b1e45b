"""The `idx` source (alias `fashion_mnist_idx`): MNIST-style IDX files, and the demo's fallback.

IDX files (`train-images-idx3-ubyte[.gz]` and its labels) are read whole through `tf.io.gfile`.
A bad file raises a one-line `ConfigError` naming it when the source is loaded, before training
starts (a truncated `.gz`, a wrong magic number or size, a label/image count mismatch).
"""
import gzip
import os
import struct
import zlib

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import filesystem
from tfadvgan.data import registry
from tfadvgan.data import sources

DEFAULT_IDX_PATH = "/usr/share/datasets/fashion-mnist"

# IDX type codes -> numpy dtypes (big-endian).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_PREFIX = {"train": "train", "test": "t10k"}


def _gzip_error(path, e, size=None):
  """The ConfigError for a `.gz` file that does not decompress."""
  if isinstance(e, EOFError):
    what = "is truncated: its gzip stream ends before the end-of-stream marker"
    what += f" (the file has {size} bytes)" if size is not None else ""
  else:
    what = f"is not a valid gzip file ({filesystem.first_line(e) or type(e).__name__})"
  return errors.ConfigError(f"{path} {what}; download or copy it again (or point dataset.path "
                            "at a complete copy).")


def _gunzip(raw, path):
  try:
    return gzip.decompress(raw)
  except (EOFError, OSError, zlib.error) as e:
    raise _gzip_error(path, e, len(raw)) from None


def _parse_idx_header(head, path):
  errors.check(
      len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_DTYPES,
      f"{path} is not an IDX file (bad magic number {bytes(head[:4]).hex() or 'none: empty file'})"
      "; point dataset.path at MNIST-style IDX files.")
  ndim = head[3]
  errors.check(len(head) >= 4 + 4 * ndim,
               f"{path}: truncated IDX header ({len(head)} bytes, {ndim} dimensions need "
               f"{4 + 4 * ndim}); the file is truncated or corrupt.")
  dims = struct.unpack(">" + "I" * ndim, head[4:4 + 4 * ndim])
  return np.dtype(_IDX_DTYPES[head[2]]), tuple(dims)


def read_idx_header(path):
  """Returns `(dtype, dims)` from an IDX file header (`.gz` or plain) without reading the data."""
  try:
    with tf.io.gfile.GFile(path, "rb") as raw:
      f = gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw
      head = f.read(4)
      head += f.read(4 * head[3]) if len(head) == 4 else b""
  except tf.errors.OpError as e:
    raise errors.ConfigError(f"Cannot read {path!r}: {filesystem.op_message(e)}") from None
  except (EOFError, OSError, zlib.error) as e:
    raise _gzip_error(path, e) from None
  return _parse_idx_header(head, path)


def read_idx(path):
  """Reads a whole IDX file (`.gz` or plain) into a numpy array of shape `dims`.

  Raises:
    ConfigError: naming `path`, when the gzip stream is truncated or corrupt, the magic number is
      wrong, or the data size differs from what the header says.
  """
  data = filesystem.read_bytes(path)
  if path.endswith(".gz"):
    data = _gunzip(data, path)
  dtype, dims = _parse_idx_header(data[:4 + 4 * data[3]] if len(data) >= 4 else data, path)
  offset = 4 + 4 * len(dims)
  count = int(np.prod(dims)) if dims else 1
  errors.check(len(data) - offset == count * dtype.itemsize,
               f"{path}: the IDX header says shape {dims} ({count * dtype.itemsize} bytes of "
               f"data) but the file holds {len(data) - offset}; the file is truncated or corrupt.")
  return np.frombuffer(data, dtype, count=count, offset=offset).reshape(dims)


def find_idx_files(path, split):
  """Returns `(images_file, labels_file or None)` for `split` in an IDX directory.

  Accepts `train-images-idx3-ubyte`, `train-images.idx3-ubyte` and their `.gz` versions (`t10k`
  for the test split).
  """
  if path is None:
    errors.check(filesystem.exists(DEFAULT_IDX_PATH),
                 f"Fashion-MNIST is not at its default path {DEFAULT_IDX_PATH} (Debian/Ubuntu: "
                 "apt-get install dataset-fashion-mnist); or set dataset.path to a directory with "
                 "MNIST-style IDX files.")
    path = DEFAULT_IDX_PATH
  path = filesystem.require_path(path, "idx", "a directory with MNIST/Fashion-MNIST IDX files")
  errors.check(filesystem.isdir(path), f"dataset.path {path!r} must be a directory of IDX files.")
  prefix = _IDX_PREFIX[split]
  names = set(filesystem.listdir(path))  # one listing, rather than a stat per candidate name

  def find(kind, ndim):
    for sep in ("-", "."):
      for ext in ("", ".gz"):
        candidate = f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}"
        if candidate in names:
          return os.path.join(path, candidate)
    return None

  images = find("images", 3)
  errors.check(
      images is not None,
      f"No {prefix}-images-idx3-ubyte[.gz] file in {path!r} for split {split!r}; set "
      f"dataset.path to a directory with MNIST-style IDX files.")
  return images, find("labels", 1)


def idx_num_examples(path=None, split="train"):
  """Number of examples in an IDX split, read from the images header (no decoding).

  `path=None` means `DEFAULT_IDX_PATH`.
  """
  images, _ = find_idx_files(path, split)
  return read_idx_header(images)[1][0]


@registry.register("idx", splits=("train", "test"), options=("path", "resolution", "pad"))
def load_idx(split, path, resolution, pad):
  """MNIST-style IDX directory (default: the system Fashion-MNIST copy).

  Images are 28x28x1, padded with -1 to 32x32 (or resized with `pad=False`); labels come from the
  matching `*-labels-idx1-ubyte` file when present (10 classes, or max label + 1).
  """
  images_file, labels_file = find_idx_files(path, split)
  images = read_idx(images_file)
  errors.check(images.ndim == 3 and images.dtype == np.uint8,
               f"{images_file}: expected uint8 images [N, H, W], got {images.dtype} "
               f"{images.shape}.")
  labels, num_classes = None, None
  if labels_file is not None:
    labels = read_idx(labels_file)
    errors.check(labels.ndim == 1 and labels.dtype == np.uint8,
                 f"{labels_file}: expected uint8 labels [N], got {labels.dtype} {labels.shape}.")
    errors.check(labels.shape[0] == images.shape[0],
                 f"{labels_file} holds {labels.shape[0]} labels but {images_file} holds "
                 f"{images.shape[0]} images; both files must come from the same download.")
    num_classes = max(10, int(labels.max()) + 1) if labels.size else 10
  is_28 = images.shape[1:] == (28, 28)
  source = sources.from_arrays(images, labels, name="idx", num_classes=num_classes,
                               resolution=(resolution or 32) if (is_28 and not pad)
                               else resolution,
                               pad_to=32 if (is_28 and pad) else None)
  return source


registry.alias("fashion_mnist_idx", "idx")

# The only dataset bindings under which `train.fallback_to_ring` may replace the data with the ring:
# the idx source at its built-in default path, with nothing else about the dataset set.
_FALLBACK_BINDINGS = {"source": "idx"}


def load_with_ring_fallback(fallback_to_ring):
  """The configured dataset (`dataset.*` gin bindings), or the demo's fallback to the 2-D ring.

  The fallback applies only when `fallback_to_ring` is set, the `dataset.*` bindings in force are
  exactly `dataset.source = 'idx'` (so the idx loader reads its built-in default path
  `DEFAULT_IDX_PATH`, which nobody chose) and that directory does not exist. Anything the user set
  about the dataset (another source, a `dataset.path`, even one equal to the default, classes,
  resolution, ...) is loaded as given, and a problem with it is a ConfigError. The fallback prints
  one plain line saying so.

  Returns:
    `(source, fell_back)`; with `fell_back`, the source is the ring and the caller must use a model
    for 2-D points.
  """
  if (fallback_to_ring and gin.get_bindings("dataset") == _FALLBACK_BINDINGS
      and not filesystem.exists(DEFAULT_IDX_PATH)):
    logging.warning(f"Fashion-MNIST is not installed at {DEFAULT_IDX_PATH} (Debian/Ubuntu: "
                    "apt-get install dataset-fashion-mnist), so this demo trains on the 2-D ring "
                    "of 8 Gaussians with MLP networks instead. Set dataset.source / dataset.path "
                    "to train on other data.")
    return registry.load(source="ring"), True
  return registry.load(), False
