"""Reading dataset files through `tf.io.gfile`, with one-line errors.

Every local source reads its files through these helpers (or `tf.io.read_file`), so `dataset.path`
may be any TensorFlow filesystem path (`gs://...`, `ram://...`) as well as a local one; a file that
cannot be accessed raises a one-line `ConfigError` naming it, without TensorFlow's op context.
"""
import re

import tensorflow as tf

from tfadvgan import errors

_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$")


def first_line(message):
  """The first line of an error message, without TF's op-context decorations."""
  line = (str(message).strip().splitlines() or [""])[0]
  return _TF_NOISE.sub("", line).strip()


def op_message(e):
  """The first line of a `tf.errors.OpError`'s message (or its type's name)."""
  return first_line(e.message) or type(e).__name__


def gfile_call(fn, path, *args):
  """`fn(path, *args)` for a tf.io.gfile function; filesystem errors become a ConfigError."""
  try:
    return fn(path, *args)
  except tf.errors.OpError as e:
    raise errors.ConfigError(f"Cannot access {path!r}: {op_message(e)}") from None


def exists(path):
  """`tf.io.gfile.exists`, with a ConfigError for a filesystem error."""
  return gfile_call(tf.io.gfile.exists, path)


def isdir(path):
  """`tf.io.gfile.isdir`, with a ConfigError for a filesystem error."""
  return gfile_call(tf.io.gfile.isdir, path)


def listdir(path):
  """Sorted entry names of a directory (GCS marks subdirectories with a trailing '/': dropped)."""
  return sorted(name.rstrip("/") for name in gfile_call(tf.io.gfile.listdir, path))


def read_bytes(path):
  """The whole content of a file, through tf.io.gfile."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.OpError as e:
    raise errors.ConfigError(f"Cannot read {path!r}: {op_message(e)}") from None


def require_path(path, source, what):
  """`path`, which `source` needs (`what` it should be) and which must exist."""
  errors.check(path is not None, f"Dataset {source!r} needs dataset.path: {what}.")
  errors.check(exists(path),
               f"dataset.path {path!r} does not exist; set dataset.path to {what} for {source!r}.")
  return path
