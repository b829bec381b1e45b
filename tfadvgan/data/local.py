"""Local file sources: `idx` (MNIST-style IDX files), `cifar_python` (CIFAR pickle archives),
`npz` (numpy arrays) and `folder` (a directory of images, optionally one subfolder per class).
"""
import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import sources
from tfadvgan.data import transforms

AUTOTUNE = tf.data.AUTOTUNE

DEFAULT_IDX_PATH = "/usr/share/datasets/fashion-mnist"

# IDX type codes -> numpy dtypes (big-endian).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_PREFIX = {"train": "train", "test": "t10k"}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def _require_path(path, source, what):
  errors.check(path is not None, f"Dataset {source!r} needs dataset.path: {what}.")
  errors.check(os.path.exists(path),
               f"dataset.path {path!r} does not exist; set dataset.path to {what} for {source!r}.")
  return path


# ---------------------------------------------------------------------------------------------
# IDX


def _open_maybe_gzip(path):
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _parse_idx_header(head, path):
  errors.check(
      len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_DTYPES,
      f"{path} is not an IDX file (bad magic number); point dataset.path at MNIST-style IDX files.")
  ndim = head[3]
  errors.check(len(head) >= 4 + 4 * ndim, f"{path}: truncated IDX header.")
  dims = struct.unpack(">" + "I" * ndim, head[4:4 + 4 * ndim])
  return np.dtype(_IDX_DTYPES[head[2]]), tuple(dims)


def read_idx_header(path):
  """Returns `(dtype, dims)` from an IDX file header (`.gz` or plain) without reading the data."""
  with _open_maybe_gzip(path) as f:
    head = f.read(4)
    head += f.read(4 * head[3]) if len(head) == 4 else b""
  return _parse_idx_header(head, path)


def read_idx(path):
  """Reads a whole IDX file (`.gz` or plain) into a numpy array of shape `dims`."""
  with _open_maybe_gzip(path) as f:
    data = f.read()
  dtype, dims = _parse_idx_header(data[:4 + 4 * data[3]] if len(data) >= 4 else data, path)
  offset = 4 + 4 * len(dims)
  count = int(np.prod(dims)) if dims else 1
  errors.check(len(data) - offset == count * dtype.itemsize,
               f"{path}: IDX header says {dims} but the file holds {len(data) - offset} bytes of "
               f"data; the file is truncated or corrupt.")
  return np.frombuffer(data, dtype, count=count, offset=offset).reshape(dims)


def find_idx_files(path, split):
  """Returns `(images_file, labels_file or None)` for `split` in an IDX directory.

  Accepts `train-images-idx3-ubyte`, `train-images.idx3-ubyte` and their `.gz` versions (`t10k`
  for the test split).
  """
  path = _require_path(path, "idx", "a directory with MNIST/Fashion-MNIST IDX files")
  errors.check(os.path.isdir(path), f"dataset.path {path!r} must be a directory of IDX files.")
  prefix = _IDX_PREFIX[split]

  def find(kind, ndim):
    for sep in ("-", "."):
      for ext in ("", ".gz"):
        candidate = os.path.join(path, f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}")
        if os.path.exists(candidate):
          return candidate
    return None

  images = find("images", 3)
  errors.check(
      images is not None,
      f"No {prefix}-images-idx3-ubyte[.gz] file in {path!r} for split {split!r}; set "
      f"dataset.path to a directory with MNIST-style IDX files.")
  return images, find("labels", 1)


def idx_num_examples(path=DEFAULT_IDX_PATH, split="train"):
  """Number of examples in an IDX split, read from the images header (no decoding)."""
  images, _ = find_idx_files(path, split)
  return read_idx_header(images)[1][0]


@sources.register("idx", splits=("train", "test"), options=("path", "resolution", "pad"))
def load_idx(split, path, resolution, pad):
  """MNIST-style IDX directory (default: the system Fashion-MNIST copy).

  Images are 28x28x1, padded with -1 to 32x32 (or resized with `pad=False`); labels come from the
  matching `*-labels-idx1-ubyte` file when present (10 classes, or max label + 1).
  """
  images_file, labels_file = find_idx_files(path or DEFAULT_IDX_PATH, split)
  images = read_idx(images_file)
  errors.check(images.ndim == 3 and images.dtype == np.uint8,
               f"{images_file}: expected uint8 images [N, H, W], got {images.dtype} "
               f"{images.shape}.")
  labels, num_classes = None, None
  if labels_file is not None:
    labels = read_idx(labels_file)
    errors.check(labels.shape == images.shape[:1],
                 f"{labels_file} holds {labels.shape} labels for {images.shape[0]} images.")
    num_classes = max(10, int(labels.max()) + 1) if labels.size else 10
  is_28 = images.shape[1:] == (28, 28)
  source = sources.from_arrays(images, labels, name="idx", num_classes=num_classes,
                               resolution=(resolution or 32) if (is_28 and not pad)
                               else resolution,
                               pad_to=32 if (is_28 and pad) else None)
  return source


sources.alias("fashion_mnist_idx", "idx")

# ---------------------------------------------------------------------------------------------
# CIFAR python pickles

_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class _Files:
  """Read access by base name to the files of a directory tree or a tar archive."""

  def __init__(self, path):
    self._tar = None
    self._paths = {}
    if os.path.isdir(path):
      for root, _, names in os.walk(path):
        for name in names:
          self._paths.setdefault(name, os.path.join(root, name))
    else:
      try:
        self._tar = tarfile.open(path, "r:*")
      except (tarfile.TarError, OSError) as e:
        raise errors.ConfigError(
            f"dataset.path {path!r} is neither a directory nor a readable .tar.gz archive "
            f"({e}); point it at cifar-10-python.tar.gz / cifar-100-python.tar.gz or the "
            f"extracted directory.") from None
      for member in self._tar.getmembers():
        if member.isfile():
          self._paths.setdefault(os.path.basename(member.name), member)

  def __contains__(self, name):
    return name in self._paths

  def read(self, name):
    entry = self._paths[name]
    if self._tar is not None:
      return self._tar.extractfile(entry).read()
    with open(entry, "rb") as f:
      return f.read()

  def close(self):
    if self._tar is not None:
      self._tar.close()


def _unpickle(files, name, path):
  try:
    batch = pickle.loads(files.read(name), encoding="bytes")
  except Exception as e:  # pylint: disable=broad-except
    raise errors.ConfigError(f"{path}: cannot unpickle CIFAR file {name!r} ({e}).") from None
  return {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}


def _cifar_batch(files, name, label_key, path):
  batch = _unpickle(files, name, path)
  errors.check("data" in batch and label_key in batch,
               f"{path}: CIFAR file {name!r} has no 'data' / {label_key!r} entries.")
  data = np.asarray(batch["data"], np.uint8)
  errors.check(data.ndim == 2 and data.shape[1] == 3 * 32 * 32,
               f"{path}: CIFAR file {name!r} has data of shape {data.shape}, expected [N, 3072].")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, np.asarray(batch[label_key], np.int64)


def read_cifar_python(path, split):
  """Reads a CIFAR-10 or CIFAR-100 python archive (`.tar.gz` or extracted directory).

  Returns:
    `(images uint8 [N, 32, 32, 3], labels [N], num_classes)`; CIFAR-100 uses `fine_labels`.
  """
  files = _Files(path)
  try:
    if "data_batch_1" in files or "test_batch" in files:
      names = _CIFAR10_TRAIN if split == "train" else ("test_batch",)
      label_key, num_classes = "labels", 10
    elif "train" in files or "test" in files:
      names = (split,)
      label_key, num_classes = "fine_labels", 100
    else:
      raise errors.ConfigError(
          f"{path!r} holds neither CIFAR-10 (data_batch_1..5, test_batch) nor CIFAR-100 "
          f"(train, test) python pickles; set dataset.path to the CIFAR python archive.")
    missing = [n for n in names if n not in files]
    errors.check(not missing, f"{path!r} is missing CIFAR file(s) {missing} for split {split!r}.")
    parts = [_cifar_batch(files, n, label_key, path) for n in names]
  finally:
    files.close()
  return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
          num_classes)


@sources.register("cifar_python", splits=("train", "test"), options=("path", "resolution"))
def load_cifar_python(split, path, resolution):
  """CIFAR-10/100 from the python pickle archive (labels: CIFAR-10 classes or CIFAR-100 fine)."""
  path = _require_path(path, "cifar_python",
                       "cifar-10-python.tar.gz, cifar-100-python.tar.gz or the extracted directory")
  images, labels, num_classes = read_cifar_python(path, split)
  name = "cifar10_python" if num_classes == 10 else "cifar100_python"
  return sources.from_arrays(images, labels, name=name, num_classes=num_classes,
                             resolution=resolution)


# ---------------------------------------------------------------------------------------------
# npz


@sources.register("npz", splits=("train",), options=("path", "resolution"))
def load_npz(split, path, resolution):
  """A `.npz` file with `images` and optional `labels` (and optional scalar `num_classes`).

  `images` is `[N, H, W, C]` or `[N, H, W]`; uint8 arrays are read as 0..255, floating point
  arrays must already be in [-1, 1] (see `from_arrays`). The whole file is one "train" split.
  """
  del split
  path = _require_path(path, "npz", "an .npz file with an 'images' array")
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except Exception as e:  # pylint: disable=broad-except
    raise errors.ConfigError(f"Cannot read {path!r} as an .npz file ({e}).") from None
  errors.check("images" in arrays,
               f"{path!r} has no 'images' array (found: {sorted(arrays)}); save it with "
               f"np.savez(path, images=..., labels=...).")
  images = arrays["images"]
  errors.check(images.ndim in (3, 4),
               f"{path!r}: 'images' must have shape [N, H, W, C] or [N, H, W], got "
               f"{images.shape}.")
  num_classes = int(arrays["num_classes"]) if "num_classes" in arrays else None
  return sources.from_arrays(images, arrays.get("labels"), name="npz", num_classes=num_classes,
                             resolution=resolution)


# ---------------------------------------------------------------------------------------------
# Image folder


def _is_image(name):
  return name.lower().endswith(IMAGE_EXTENSIONS)


def list_image_folder(path):
  """Lists a folder of images.

  Returns:
    `(files, labels or None, class_names)`: with class subfolders, labels index the sorted
    subfolder names; subfolders without images are ignored.
  """
  entries = sorted(os.listdir(path))
  top = [os.path.join(path, n) for n in entries
         if _is_image(n) and os.path.isfile(os.path.join(path, n))]
  class_names, files, labels = [], [], []
  for name in entries:
    sub = os.path.join(path, name)
    if not os.path.isdir(sub):
      continue
    images = [os.path.join(sub, n) for n in sorted(os.listdir(sub)) if _is_image(n)]
    if images:
      files.extend(images)
      labels.extend([len(class_names)] * len(images))
      class_names.append(name)
  if not class_names:
    return top, None, []
  errors.check(
      not top,
      f"{path!r} has both images at the top level and class subfolders; move the top-level "
      f"images into a subfolder (or remove the subfolders) so labels are unambiguous.")
  return files, np.asarray(labels, np.int32), class_names


@sources.register("folder", splits=("train",), options=("path", "resolution"))
def load_folder(split, path, resolution):
  """A folder of png/jpg/bmp images, optionally with one subfolder per class.

  Labels follow the sorted subfolder names. Channels follow the first image (RGBA -> RGB,
  grey+alpha -> grey). With `resolution`, every image is centre-cropped to a square and resized
  to `resolution` x `resolution`; without it every image is resized to the first image's size.
  """
  del split
  path = _require_path(path, "folder", "a directory of images (optionally class subfolders)")
  errors.check(os.path.isdir(path), f"dataset.path {path!r} must be a directory of images.")
  files, labels, _ = list_image_folder(path)
  errors.check(files, f"No {'/'.join(IMAGE_EXTENSIONS)} images found in {path!r} or its "
               f"subfolders; check dataset.path.")
  try:
    first = tf.io.decode_image(tf.io.read_file(files[0]), expand_animations=False)
  except tf.errors.OpError as e:
    raise errors.ConfigError(f"Cannot decode image {files[0]!r}: {e.message}") from None
  channels = {1: 1, 2: 1, 3: 3, 4: 3}[int(first.shape[-1])]
  height, width = (resolution, resolution) if resolution else tuple(first.shape[:2])

  def decode(filename):
    image = tf.io.decode_image(tf.io.read_file(filename), channels=channels,
                               expand_animations=False)
    image = transforms.to_unit_range(image)
    if resolution:
      image = transforms.crop_square_and_resize(image, resolution)
    else:
      size = tf.shape(image)[:2]
      image = tf.cond(tf.reduce_all(size == [height, width]), lambda: image,
                      lambda: transforms.resize(image, height, width))
    return tf.ensure_shape(image, [height, width, channels])

  if labels is None:
    ds = tf.data.Dataset.from_tensor_slices(files).map(decode, num_parallel_calls=AUTOTUNE)
    return sources.Source(ds, 0, (height, width, channels), "folder")
  ds = tf.data.Dataset.from_tensor_slices((files, labels)).map(
      lambda f, y: (decode(f), y), num_parallel_calls=AUTOTUNE)
  return sources.Source(ds, int(labels.max()) + 1, (height, width, channels), "folder")
