"""Shared absl/gin plumbing of the command-line scripts: flags, config parsing, clean errors."""

import logging
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
from absl import flags  # noqa: E402

from tfadvgan import errors  # noqa: E402

FLAGS = flags.FLAGS


def define_gin_flags():
  flags.DEFINE_multi_string("gin_file", [], "Gin config file(s), applied in order.")
  flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. 'train.num_steps = 100'.")


def parse_gin(gin_files, gin_params, finalize=True):
  """Parses gin files and bindings; unknown names and missing files become ConfigErrors."""
  for path in gin_files:
    errors.check(os.path.exists(path), f"--gin_file {path} does not exist.")
    # `include 'common/x.gin'` resolves against the enclosing gin_configs/ directory.
    directory = os.path.dirname(os.path.abspath(path))
    while directory != os.path.dirname(directory):
      if os.path.basename(directory) == "gin_configs":
        gin.add_config_file_search_path(directory)
        break
      directory = os.path.dirname(directory)
  gin.add_config_file_search_path(os.getcwd())
  root = logging.getLogger()
  root.addFilter(_quiet_search)
  try:
    gin.parse_config_files_and_bindings(gin_files, gin_params, finalize_config=finalize)
  except (ValueError, KeyError, SyntaxError, IOError) as e:
    raise errors.ConfigError(f"Bad gin config: {e}") from None
  finally:
    root.removeFilter(_quiet_search)


def _quiet_search(record):
  """Drops gin's 'Path not found' lines for search-path misses during `include` resolution."""
  return not str(record.msg).startswith("Path not found")


_GIN_CONTEXT = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)")


def strip_gin_context(message):
  """Drops the "In call to configurable 'x' (<function ...>)" lines gin adds to exceptions."""
  return _GIN_CONTEXT.sub("", message).strip()


def main_wrapper(fn):
  """Runs `fn(argv)`; a ConfigError prints one message and exits with status 2."""
  def wrapped(argv):
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    if not FLAGS["verbosity"].present:
      absl_logging.set_verbosity(absl_logging.WARNING)
    try:
      return fn(argv)
    except errors.ConfigError as e:
      print(f"error: {strip_gin_context(str(e))}", file=sys.stderr)
      sys.exit(2)
  return wrapped
