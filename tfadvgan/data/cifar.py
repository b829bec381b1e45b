"""The `cifar_python` source: CIFAR-10/100 python pickle archives (`.tar.gz` or extracted).

Files are read through `tf.io.gfile`; the pickles are loaded with an unpickler that accepts only
the types a CIFAR archive holds.
"""
import io
import os
import pickle
import tarfile
import zlib

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import filesystem
from tfadvgan.data import registry
from tfadvgan.data import sources



_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class _Files:
  """Read access by base name to the files of a directory tree or a tar archive (via gfile)."""

  def __init__(self, path):
    self._tar = None
    self._fileobj = None
    self._paths = {}
    if filesystem.isdir(path):
      for root, _, names in filesystem.gfile_call(lambda p: list(tf.io.gfile.walk(p)), path):
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
            f"({filesystem.first_line(getattr(e, 'message', e))}); point it at "
            "cifar-10-python.tar.gz / cifar-100-python.tar.gz or the extracted directory."
        ) from None
      for member in members:
        if member.isfile():
          self._paths.setdefault(os.path.basename(member.name), member)

  def __contains__(self, name):
    return name in self._paths

  def read(self, name):
    entry = self._paths[name]
    if self._tar is not None:
      return self._tar.extractfile(entry).read()
    return filesystem.read_bytes(entry)

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
    batch = _CifarUnpickler(io.BytesIO(files.read(name)), encoding="bytes").load()
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
  path = filesystem.require_path(path, "cifar_python",
                       "cifar-10-python.tar.gz, cifar-100-python.tar.gz or the extracted directory")
  images, labels, num_classes = read_cifar_python(path, split)
  name = "cifar10_python" if num_classes == 10 else "cifar100_python"
  return sources.from_arrays(images, labels, name=name, num_classes=num_classes,
                             resolution=resolution)
