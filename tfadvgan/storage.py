"""Run-directory file I/O on any TensorFlow filesystem (local, gs://, ram://, ...).

Every file tfadvgan writes or reads in a run directory, an output directory or a cache goes through
this module, which goes through `tf.io.gfile`. So `--model_dir=gs://bucket/run` puts config,
run.json, samples, eval results and diagnostics next to the checkpoints, instead of into a local
folder literally named `gs:`.

Writes that fail for a reason the user can fix (no space, no permission, a path under a file, a
read-only filesystem) raise `errors.ConfigError` with one line naming the path; reads raise
`FileNotFoundError` / `OSError` as Python's `open` would.

Atomic writes: `atomic_write` writes a temp file in the same directory and renames it over the
target. On a local (POSIX) filesystem the rename is atomic: a reader sees the old file or the new
one. On GCS, `rename` is copy-then-delete: the copy of one object is itself atomic (GCS never
exposes a half-written object), so a reader still sees the old or the new contents of the target,
never a mix; what it may additionally see, briefly, is the `.tmp-*` sibling, which no reader of
tfadvgan looks at (and which is removed on failure).
"""

import contextlib
import io
import json
import os
import posixpath
import uuid

import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors

gfile = tf.io.gfile
TEMP_PREFIX = ".tmp-"


def _register_gin_reader():
  """Lets gin parse config files on any gfile filesystem (a run's operative_config.gin on gs://).

  gin tries its readers in order and takes the first whose check accepts the path; local files
  keep using `open`. (gin.tf would register this too, but it needs tf.estimator, gone in TF 2.16.)
  """
  def readable(path):
    return "://" in path and gfile.exists(path)
  readers = getattr(gin.config, "_FILE_READERS", None)
  if readers is None:
    gin.config.register_file_reader(gfile.GFile, readable)
  elif not any(reader is gfile.GFile for reader, _ in readers):
    # Right after `open`, before gin's Python-package reader, which logs "Path not found" errors
    # for every path it cannot import.
    readers.insert(1, (gfile.GFile, readable))


_register_gin_reader()


def is_local(path):
  """True for plain paths and file:// URLs; False for gs://, ram://, s3://, hdfs://, ..."""
  path = os.fspath(path)
  return "://" not in path or path.startswith("file://")


def local_path(path):
  """The OS path of a local path or file:// URL; None for other filesystems."""
  path = os.fspath(path)
  if path.startswith("file://"):
    return path[len("file://"):]
  return None if "://" in path else path


def _url_split(path):
  scheme, rest = path.split("://", 1)
  return scheme + "://", rest


def join(path, *parts):
  return os.path.join(os.fspath(path), *map(os.fspath, parts))


def dirname(path):
  path = os.fspath(path)
  if "://" in path:
    scheme, rest = _url_split(path)
    return scheme + posixpath.dirname(rest.rstrip("/"))
  return os.path.dirname(path)


def basename(path):
  path = os.fspath(path)
  return posixpath.basename(path.rstrip("/")) if "://" in path else os.path.basename(path)


def abspath(path):
  """os.path.abspath for local paths; URLs unchanged (`os.path.abspath('gs://b')` is wrong)."""
  path = os.fspath(path)
  return path if "://" in path else os.path.abspath(path)


def cache_dir(*parts):
  """``$TFADVGAN_CACHE_DIR/<parts>`` or ``~/.cache/tfadvgan/<parts>``: caches kept across runs
  (reference activations, checked image folders); any TensorFlow filesystem path."""
  root = os.environ.get("TFADVGAN_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "tfadvgan")
  return join(root, *parts)


def realpath(path):
  path = os.fspath(path)
  return path.rstrip("/") if "://" in path else os.path.realpath(path)


# --------------------------------------------------------------------------------- errors

def _reason(error):
  """The OS-level reason of a gfile / OS error: 'No space left on device', 'Permission denied'."""
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  text = str(getattr(error, "message", None) or error).strip().splitlines()
  text = text[0] if text else type(error).__name__
  return text.rsplit("; ", 1)[-1].strip() or type(error).__name__


def _hint(error, reason):
  low = reason.lower()
  if isinstance(error, tf.errors.ResourceExhaustedError) or "no space" in low or "quota" in low:
    return "the disk is full: free space there, or write to a location with more space."
  if "read-only" in low:
    return "that filesystem is read-only: choose a writable location."
  if isinstance(error, tf.errors.PermissionDeniedError) or "permission" in low:
    return "permission denied: make it writable, or choose a location you can write to."
  if "not a directory" in low:
    return "a part of that path is a file, not a directory: choose another path."
  return f"{reason}."


def write_error(path, error, what="write"):
  """The one-line ConfigError for a failed write of `path`."""
  reason = _reason(error)
  return errors.ConfigError(f"Cannot {what} {path}: {_hint(error, reason)}")


@contextlib.contextmanager
def writing(path, what="write"):
  """Turns OS / gfile errors raised inside into `write_error(path, ...)`."""
  try:
    yield
  except errors.ConfigError:
    raise
  except (tf.errors.OpError, OSError) as e:
    raise write_error(path, e, what) from None


@contextlib.contextmanager
def _reading(path):
  try:
    yield
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"No such file: {path}") from None
  except tf.errors.OpError as e:
    raise OSError(f"Cannot read {path}: {_reason(e)}") from None


# --------------------------------------------------------------------------------- queries

def exists(path):
  return gfile.exists(os.fspath(path))


def isdir(path):
  return gfile.isdir(os.fspath(path))


def isfile(path):
  path = os.fspath(path)
  return gfile.exists(path) and not gfile.isdir(path)


def listdir(path):
  """Names in a directory (no trailing '/' on subdirectories, as os.listdir)."""
  with _reading(path):
    return sorted(n.rstrip("/") for n in gfile.listdir(os.fspath(path)))


def glob(pattern):
  return sorted(gfile.glob(os.fspath(pattern)))


def walk(path):
  return gfile.walk(os.fspath(path))


# --------------------------------------------------------------------------------- reads

def read(path, binary=False):
  """The contents of `path`: str, or bytes with `binary`."""
  path = os.fspath(path)
  with _reading(path), gfile.GFile(path, "rb" if binary else "r") as f:
    return f.read()


def read_json(path):
  return json.loads(read(path))


def read_required_json(path, missing, corrupt_fix):
  """The JSON at `path`; a ConfigError `missing` when it does not exist, and "PATH is corrupt
  (...); `corrupt_fix`" when it does not parse."""
  errors.check(exists(path), missing)
  return _parsed_json(path, None, corrupt_fix)


def read_optional_json(path, default=None, expect=None, corrupt_fix="fix or delete it."):
  """The JSON at `path`, or `default` when it does not exist; a ConfigError "PATH is corrupt
  (...); `corrupt_fix`" when it does not parse, or is not an `expect` (a type) when given."""
  if not exists(path):
    return default
  return _parsed_json(path, expect, corrupt_fix)


def _parsed_json(path, expect, corrupt_fix):
  try:
    value = read_json(path)
  except ValueError as e:
    raise errors.ConfigError(f"{path} is corrupt ({e}); {corrupt_fix}") from None
  errors.check(expect is None or isinstance(value, expect),
               f"{path} is corrupt (not a JSON {getattr(expect, '__name__', '')}); {corrupt_fix}")
  return value


def load_npz(path):
  """`{name: array}` of an .npz (read whole, `allow_pickle=False`)."""
  with np.load(io.BytesIO(read(path, binary=True)), allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


@contextlib.contextmanager
def local_copy(path):
  """Yields a local filename holding `path`'s bytes: `path` itself if it is local, else a copy
  with the same basename in a temp directory, removed afterwards (for libraries that only open
  local files: h5py weights, tarfile)."""
  path = os.fspath(path)
  if local_path(path) is not None:
    yield local_path(path)
    return
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(prefix="tfadvgan_") as tmp:
    local = os.path.join(tmp, basename(path))
    with _reading(path):
      gfile.copy(path, local, overwrite=True)
    yield local


# --------------------------------------------------------------------------------- writes

def makedirs(path):
  path = os.fspath(path)
  with writing(path, "create directory"):
    gfile.makedirs(path)


def write(path, data):
  """Writes str or bytes to `path` (not atomic; see `atomic_write`)."""
  path = os.fspath(path)
  with writing(path), gfile.GFile(path, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)


def atomic_write(path, data):
  """Writes str or bytes to a temp file in `path`'s directory, then renames it over `path`.

  The directory is created if needed. On failure the temp file is removed and the target is left
  as it was. See the module docstring for what "atomic" means on GCS.
  """
  atomic_save(path, lambda tmp: write(tmp, data))


def atomic_save(path, save_fn):
  """`save_fn(tmp)` writes a file at `tmp` (same directory and name ending as `path`), which is
  then renamed over `path`; on any failure the temp file is removed (e.g. for `model.save`)."""
  path = os.fspath(path)
  directory = dirname(path)
  if directory:
    makedirs(directory)
  tmp = join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{basename(path)}")
  try:
    with writing(path):
      save_fn(tmp)
      gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    try:
      if gfile.exists(tmp):
        gfile.remove(tmp)
    except (tf.errors.OpError, OSError):
      pass
    raise


def atomic_write_json(path, value, indent=2, **kwargs):
  atomic_write(path, json.dumps(value, indent=indent, **kwargs))


def npz_bytes(**arrays):
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  return buf.getvalue()


def save_npz(path, **arrays):
  """Writes an .npz atomically (built in memory, then `atomic_write`)."""
  atomic_write(path, npz_bytes(**arrays))


def remove(path):
  gfile.remove(os.fspath(path))


def rmtree(path):
  gfile.rmtree(os.fspath(path))


def rename(src, dst, overwrite=False):
  """Renames a file (see `rename_dir` for directories)."""
  with writing(dst):
    gfile.rename(os.fspath(src), os.fspath(dst), overwrite=overwrite)


def copy(src, dst, overwrite=False):
  with writing(dst):
    gfile.copy(os.fspath(src), os.fspath(dst), overwrite=overwrite)


def rename_dir(src, dst):
  """Moves directory `src` to `dst` (which must not exist).

  Locally one atomic rename. Elsewhere a copy of every file, then the removal of `src`: object
  stores have no directory rename (on ram:// gfile's directory rename even drops the contents).
  """
  src, dst = os.fspath(src), os.fspath(dst)
  if is_local(src) and is_local(dst):
    rename(src, dst)
    return
  for directory, _, files in list(gfile.walk(src)):
    relative = directory[len(src):].strip("/")
    target = join(dst, relative) if relative else dst
    makedirs(target)
    for name in files:
      copy(join(directory, name), join(target, name), overwrite=True)
  rmtree(src)


def read_scalars(log_dir, tag):
  """[(step, value)] of one scalar tag in the TensorBoard event files of `log_dir`."""
  points = []
  for name in sorted(listdir(log_dir)):
    if name.startswith("events"):
      for record in tf.data.TFRecordDataset(join(log_dir, name)):
        event = tf.compat.v1.Event.FromString(record.numpy())  # summary_iterator, undeprecated
        for value in event.summary.value:
          if value.tag == tag:
            points.append((event.step, float(tf.make_ndarray(value.tensor))))
  return sorted(points)
