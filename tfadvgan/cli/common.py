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
  from tfadvgan import io  # pylint: disable=g-import-not-at-top  (also lets gin read gs:// files)
  for path in gin_files:
    errors.check(io.exists(path), f"--gin_file {path} does not exist.")
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
  """Runs `fn(argv)`; a ConfigError prints one message and exits with status 2, Ctrl-C 130."""
  def wrapped(argv):
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    if not FLAGS["verbosity"].present:
      absl_logging.set_verbosity(absl_logging.WARNING)
    try:
      return fn(argv)
    except errors.ConfigError as e:
      print(f"error: {strip_gin_context(str(e))}", file=sys.stderr)
      sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own)
      print("interrupted", file=sys.stderr)
      sys.exit(130)
  return wrapped


DATA_HINT = ("Point at the data with --gin_param, e.g. --gin_param \"dataset.path = "
             "'/path/to/data'\" (local sources), --gin_param \"dataset.data_dir = '/path/to/tfds'\" "
             "(TFDS) or --gin_param \"dataset.source = '...'\".")


def load_run_source(info, split, use_run_source=True):
  """A trained run's dataset (its `dataset.*` gin config) for `split`, checked against run.json.

  Args:
    info: the run's run.json (`loop.read_run_info`).
    split: data split to load.
    use_run_source: for 2-D toy runs, load the source run.json names (the one actually trained on,
      also after a ring fallback) instead of the configured one.

  Raises:
    ConfigError: the data cannot be loaded (with DATA_HINT), or its shape differs from the run's.
  """
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if use_run_source and len(info["shape"]) == 1 and info.get("dataset") in data_lib.SOURCES:
    kwargs["source"] = info["dataset"]
  try:
    source = data_lib.load(split=split, **kwargs)
  except errors.ConfigError as e:
    raise errors.ConfigError(f"Could not load the run's data (split {split!r}): {e}\n"
                             f"{DATA_HINT}") from None
  except Exception as e:  # pylint: disable=broad-except  (missing TFDS data, no binding, ...)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise errors.ConfigError(f"Could not load the run's data (split {split!r}): "
                             f"{type(e).__name__}: {first}\n{DATA_HINT}") from None
  errors.check(list(source.shape) == list(info["shape"]),
               f"The data loaded ({source.name}, shape {tuple(source.shape)}) does not match the "
               f"run's shape {tuple(info['shape'])}. {DATA_HINT}")
  return source
