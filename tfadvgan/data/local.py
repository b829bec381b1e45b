"""Local file sources: `idx` (MNIST-style IDX files), `cifar_python` (CIFAR pickle archives),
`npz` (numpy arrays) and `folder` (a directory of images, optionally one subfolder per class).

Every file is read through `tf.io.gfile` (exists, isdir, listdir, walk, GFile) or `tf.io.read_file`,
so `dataset.path` may be any TensorFlow filesystem path (`gs://...`, `ram://...`) as well as a local
one. Bad files raise a one-line `ConfigError` naming the file when the source is loaded, before
training starts (a truncated `.gz`, a wrong IDX magic or size, label/image count mismatches, an
image in a `folder` source that does not decode).
"""
import gzip
import hashlib
import io as pyio
import json
import os
import pickle
import re
import struct
import tarfile
import zlib

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import io
from tfadvgan.data import registry
from tfadvgan.data import sources
from tfadvgan.data import transforms

AUTOTUNE = tf.data.AUTOTUNE

DEFAULT_IDX_PATH = "/usr/share/datasets/fashion-mnist"

# IDX type codes -> numpy dtypes (big-endian).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_PREFIX = {"train": "train", "test": "t10k"}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$")


def _first_line(message):
  """The first line of an error message, without TF's op-context decorations."""
  line = (str(message).strip().splitlines() or [""])[0]
  return _TF_NOISE.sub("", line).strip()


def _op_message(e):
  return _first_line(e.message) or type(e).__name__


def _gfile_call(fn, path, *args):
  """`fn(path, *args)` for a tf.io.gfile function; filesystem errors become a ConfigError."""
  try:
    return fn(path, *args)
  except tf.errors.OpError as e:
    raise errors.ConfigError(f"Cannot access {path!r}: {_op_message(e)}") from None


def exists(path):
  return _gfile_call(tf.io.gfile.exists, path)


def isdir(path):
  return _gfile_call(tf.io.gfile.isdir, path)


def listdir(path):
  """Sorted entry names of a directory (GCS marks subdirectories with a trailing '/': dropped)."""
  return sorted(name.rstrip("/") for name in _gfile_call(tf.io.gfile.listdir, path))


def read_bytes(path):
  """The whole content of a file, through tf.io.gfile."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.OpError as e:
    raise errors.ConfigError(f"Cannot read {path!r}: {_op_message(e)}") from None


def _require_path(path, source, what):
  errors.check(path is not None, f"Dataset {source!r} needs dataset.path: {what}.")
  errors.check(exists(path),
               f"dataset.path {path!r} does not exist; set dataset.path to {what} for {source!r}.")
  return path


# ---------------------------------------------------------------------------------------------
# IDX


def _gzip_error(path, e, size=None):
  """The ConfigError for a `.gz` file that does not decompress."""
  if isinstance(e, EOFError):
    what = "is truncated: its gzip stream ends before the end-of-stream marker"
    what += f" (the file has {size} bytes)" if size is not None else ""
  else:
    what = f"is not a valid gzip file ({_first_line(e) or type(e).__name__})"
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
    raise errors.ConfigError(f"Cannot read {path!r}: {_op_message(e)}") from None
  except (EOFError, OSError, zlib.error) as e:
    raise _gzip_error(path, e) from None
  return _parse_idx_header(head, path)


def read_idx(path):
  """Reads a whole IDX file (`.gz` or plain) into a numpy array of shape `dims`.

  Raises:
    ConfigError: naming `path`, when the gzip stream is truncated or corrupt, the magic number is
      wrong, or the data size differs from what the header says.
  """
  data = read_bytes(path)
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
    errors.check(exists(DEFAULT_IDX_PATH),
                 f"Fashion-MNIST is not at its default path {DEFAULT_IDX_PATH} (Debian/Ubuntu: "
                 "apt-get install dataset-fashion-mnist); or set dataset.path to a directory with "
                 "MNIST-style IDX files.")
    path = DEFAULT_IDX_PATH
  path = _require_path(path, "idx", "a directory with MNIST/Fashion-MNIST IDX files")
  errors.check(isdir(path), f"dataset.path {path!r} must be a directory of IDX files.")
  prefix = _IDX_PREFIX[split]
  names = set(listdir(path))  # one listing, rather than a stat per candidate name

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
  if fallback_to_ring and gin.get_bindings("dataset") == _FALLBACK_BINDINGS and not exists(
      DEFAULT_IDX_PATH):
    logging.warning(f"Fashion-MNIST is not installed at {DEFAULT_IDX_PATH} (Debian/Ubuntu: "
                    "apt-get install dataset-fashion-mnist), so this demo trains on the 2-D ring "
                    "of 8 Gaussians with MLP networks instead. Set dataset.source / dataset.path "
                    "to train on other data.")
    return registry.load(source="ring"), True
  return registry.load(), False

# ---------------------------------------------------------------------------------------------
# CIFAR python pickles

_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class _Files:
  """Read access by base name to the files of a directory tree or a tar archive (via gfile)."""

  def __init__(self, path):
    self._tar = None
    self._fileobj = None
    self._paths = {}
    if isdir(path):
      for root, _, names in _gfile_call(lambda p: list(tf.io.gfile.walk(p)), path):
        for name in sorted(names):
          self._paths.setdefault(name, os.path.join(root, name))
    else:
      try:
        self._fileobj = tf.io.gfile.GFile(path, "rb")
        self._tar = tarfile.open(fileobj=self._fileobj, mode="r:*")
        members = self._tar.getmembers()
      except (tarfile.TarError, OSError, EOFError, zlib.error, tf.errors.OpError) as e:
        self.close()
        raise errors.ConfigError(
            f"dataset.path {path!r} is neither a directory nor a readable .tar.gz archive "
            f"({_first_line(getattr(e, 'message', e))}); point it at cifar-10-python.tar.gz / "
            "cifar-100-python.tar.gz or the extracted directory.") from None
      for member in members:
        if member.isfile():
          self._paths.setdefault(os.path.basename(member.name), member)

  def __contains__(self, name):
    return name in self._paths

  def read(self, name):
    entry = self._paths[name]
    if self._tar is not None:
      return self._tar.extractfile(entry).read()
    return read_bytes(entry)

  def close(self):
    if self._tar is not None:
      self._tar.close()
      self._tar = None
    if self._fileobj is not None:
      self._fileobj.close()
      self._fileobj = None


# What a CIFAR python pickle holds: dicts, lists, bytes, str, ints and numpy arrays. Nothing else
# may be loaded: a crafted "CIFAR archive" would otherwise run code (pickle calls any global).
_CIFAR_GLOBALS = frozenset([
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
])


class _CifarUnpickler(pickle.Unpickler):
  """An unpickler that loads only the types a CIFAR python archive holds."""

  def find_class(self, module, name):
    if (module, name) not in _CIFAR_GLOBALS:
      raise pickle.UnpicklingError(
          f"it asks to load {module}.{name}, which a CIFAR archive never holds, so it was not "
          "unpickled (a crafted or foreign file?)")
    return super().find_class(module, name)


def _unpickle(files, name, path):
  try:
    batch = _CifarUnpickler(pyio.BytesIO(files.read(name)), encoding="bytes").load()
  except Exception as e:  # pylint: disable=broad-except
    raise errors.ConfigError(f"{path}: cannot unpickle CIFAR file {name!r} ({e}).") from None
  errors.check(isinstance(batch, dict), f"{path}: CIFAR file {name!r} holds a "
               f"{type(batch).__name__}, not a dict.")
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


@registry.register("cifar_python", splits=("train", "test"), options=("path", "resolution"))
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


@registry.register("npz", splits=("train",), options=("path", "resolution"))
def load_npz(split, path, resolution):
  """A `.npz` file with `images` and optional `labels` (and optional scalar `num_classes`).

  `images` is `[N, H, W, C]` or `[N, H, W]`; uint8 arrays are read as 0..255, floating point
  arrays must already be in [-1, 1] (see `from_arrays`). The whole file is one "train" split.
  """
  del split
  path = _require_path(path, "npz", "an .npz file with an 'images' array")
  try:
    with tf.io.gfile.GFile(path, "rb") as f, np.load(f, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except Exception as e:  # pylint: disable=broad-except
    message = _first_line(getattr(e, "message", e)) or type(e).__name__
    raise errors.ConfigError(f"Cannot read {path!r} as an .npz file ({message}).") from None
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
  """Lists a folder of images (through tf.io.gfile).

  Entries with an image extension are taken as images without a per-file stat (one listing per
  directory, which matters on GCS); the other entries that are directories are class subfolders.

  Returns:
    `(files, labels or None, class_names)`: with class subfolders, labels index the sorted
    subfolder names; subfolders without images are ignored.
  """
  entries = listdir(path)
  top = [os.path.join(path, n) for n in entries if _is_image(n)]
  class_names, files, labels = [], [], []
  for name in entries:
    sub = os.path.join(path, name)
    if _is_image(name) or not isdir(sub):
      continue
    images = [os.path.join(sub, n) for n in listdir(sub) if _is_image(n)]
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


def _decode(filename, channels=0):
  """The one image decoder of the folder source (validation and training use the same op)."""
  return tf.io.decode_image(tf.io.read_file(filename), channels=channels,
                            expand_animations=False)


def _decode_error(filename, channels):
  """The decoder's one-line message for `filename` (which failed to decode in tf.data)."""
  try:
    _decode(filename, channels)
  except tf.errors.OpError as e:
    return _first_line(e.message)
  return "it failed to read or decode"


def check_images_decode(files, channels):
  """Decodes every image of `files` once, in parallel through tf.data.

  A file that does not decode would otherwise stop training with a tf.data error that names no
  file, at whatever step first reaches it. The cost is one read and decode of the files (about
  what one epoch of the input pipeline costs; measured figures are in
  docs/reliability.md, "Folder sources").

  Raises:
    ConfigError: naming the first file (in listing order) that does not read or decode, and how
      many others fail.
  """
  if not files:
    return
  ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
  ds = ds.map(lambda i, f: (i, tf.shape(_decode(f, channels))), num_parallel_calls=AUTOTUNE,
              deterministic=False)
  ds = ds.ignore_errors().map(lambda i, _: i).batch(4096)
  ok = np.zeros([len(files)], bool)
  for index in ds.as_numpy_iterator():
    ok[index] = True
  bad = np.flatnonzero(~ok)
  if bad.size:
    first = files[bad[0]]
    others = (f"; {bad.size - 1} more of the {len(files)} images fail too (next: "
              f"{files[bad[1]]!r})" if bad.size > 1 else "")
    raise errors.ConfigError(
        f"Image {first!r} cannot be decoded ({_decode_error(first, channels)}){others}; remove "
        "or replace the bad file(s) in dataset.path.")


def _stat_key(path):
  """(size, mtime in ns) of a file, through tf.io.gfile: what the manifest compares."""
  stat = _gfile_call(tf.io.gfile.stat, path)
  return [int(stat.length), int(stat.mtime_nsec)]


def _manifest_path(path, channels):
  key = hashlib.sha1(f"{io.abspath(path)}|{channels}".encode()).hexdigest()[:16]
  return io.join(io.cache_dir("folders"), f"{key}.json")


@gin.configurable("folder_check")
def check_folder(path, files, channels, mode="changed"):
  """The folder source's decode check, paid once per dataset rather than once per start.

  Args:
    path: the folder (`dataset.path`).
    files: its image files.
    channels: decoded channels.
    mode: 'changed' (default) decodes only the files that are new or whose size or mtime
      changed since the last check passed, as recorded in a manifest under
      `$TFADVGAN_CACHE_DIR/folders` (default `~/.cache/tfadvgan/folders`); 'all' decodes every
      file at every start; 'off' decodes none (a bad file then stops training at the step that
      reaches it, with TensorFlow's message).

  Returns:
    The number of files decoded.
  """
  errors.check(mode in ("changed", "all", "off"),
               f"folder_check.mode must be 'changed', 'all' or 'off'; got {mode!r}.")
  if mode == "off":
    return 0
  if mode == "all":
    check_images_decode(files, channels)
    return len(files)
  manifest_path = _manifest_path(path, channels)
  try:
    known = json.loads(io.read(manifest_path)) if io.exists(manifest_path) else {}
  except (ValueError, errors.ConfigError):
    logging.warning("Ignoring the unreadable folder manifest %s; checking every image again.",
                    manifest_path)
    known = {}
  keys = {f: _stat_key(f) for f in files}
  todo = [f for f in files if known.get(f) != keys[f]]
  check_images_decode(todo, channels)
  if todo:
    try:
      io.atomic_write(manifest_path, json.dumps(keys))
    except errors.ConfigError as e:  # a read-only home: the check still ran
      logging.warning("Could not record the checked images (%s); the next start checks them "
                      "again.", e)
  return len(todo)


def _folder_decoder(channels, resolution, height, width):
  """The folder source's `decode`: file name -> uint8 image `[height, width, channels]`."""

  def decode(filename):
    image = _decode(filename, channels)
    if resolution:
      image = transforms.crop_square_and_resize(transforms.to_unit_range(image), resolution)
      image = transforms.to_uint8(image)
    else:
      size = tf.shape(image)[:2]
      image = tf.cond(
          tf.reduce_all(size == [height, width]), lambda: image,
          lambda: transforms.to_uint8(
              transforms.resize(transforms.to_unit_range(image), height, width)))
    return tf.ensure_shape(image, [height, width, channels])

  return decode


def _file_records(files, labels=None):
  """`Source.records` over a list of files: file i goes to shard i mod P; with a seed, each
  shard's file order is shuffled every epoch."""

  def records(num_shards, index, seed):
    names = files[index::num_shards]
    ds = tf.data.Dataset.from_tensor_slices(
        names if labels is None else (names, labels[index::num_shards]))
    if seed is not None:
      ds = ds.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    return ds

  return records


@registry.register("folder", splits=("train",), options=("path", "resolution"))
def load_folder(split, path, resolution):
  """A folder of png/jpg/bmp images, optionally with one subfolder per class.

  Labels follow the sorted subfolder names. Channels follow the first image (RGBA -> RGB,
  grey+alpha -> grey). With `resolution`, every image is centre-cropped to a square and resized
  to `resolution` x `resolution`; without it every image is resized to the first image's size
  (resized images are rounded to 8 bits, as a file of that size would be). Each input pipeline
  reads and decodes only its share of the files. Every image is checked to decode before training
  starts (`check_folder`: once per dataset, then only files that changed), so a corrupt file is
  reported by name.
  """
  del split
  path = _require_path(path, "folder", "a directory of images (optionally class subfolders)")
  errors.check(isdir(path), f"dataset.path {path!r} must be a directory of images.")
  files, labels, _ = list_image_folder(path)
  errors.check(files, f"No {'/'.join(IMAGE_EXTENSIONS)} images found in {path!r} or its "
               f"subfolders; check dataset.path.")
  try:
    first = _decode(files[0])
  except tf.errors.OpError as e:
    raise errors.ConfigError(
        f"Image {files[0]!r} cannot be decoded ({_first_line(e.message)}); remove or replace it "
        "in dataset.path.") from None
  channels = {1: 1, 2: 1, 3: 3, 4: 3}[int(first.shape[-1])]
  check_folder(path, files, channels)
  height, width = (resolution, resolution) if resolution else tuple(first.shape[:2])
  num_classes = 0 if labels is None else int(labels.max()) + 1
  return sources.Source(
      _file_records(files, labels), num_classes, (height, width, channels), "folder",
      decode=_folder_decoder(channels, resolution, height, width),
      finish=transforms.to_unit_range, num_examples=len(files), max_examples=len(files),
      file_shards=len(files))
