"""Shared absl/gin plumbing of the command-line scripts: flags, config parsing, clean errors.

Every CLI imports this module first. Importing it quiets TensorFlow's start-up (see
`_quiet_startup`) before TensorFlow itself is imported.
"""

import difflib
import importlib.abc
import importlib.util
import inspect
import logging
import os
import re
import sys
import tempfile


# ---------------------------------------------------------------- quiet TensorFlow start-up
# TF 2.21 prints 4-5 lines while it is imported and while it first looks for devices (the CUDA
# stub's "Could not find cuda drivers", "failed call to cuInit ... (303)" and absl's "All log
# messages before absl::InitializeLog()"), some of them whatever TF_CPP_MIN_LOG_LEVEL says. So, unless the
# user asked for logs, the first `import tensorflow` runs with file descriptor 2 sent to a temporary
# file, and every captured line that is not one of these known start-up lines is written back.

_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"cudart_stub\.cc.*Could not find cuda drivers",
    r"failed call to cuInit",
    r"cuda_(dnn|blas|fft)\.cc.*Unable to register",
    r"Computation placer already registered",
    r"cpu_feature_guard\.cc",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"oneDNN custom operations are on",
    r"TF-TRT Warning: Could not find TensorRT",
]))

# Our own setting is marked, so that child processes (study.py runs train.py) do not take it for
# the user's.
_MARK = "TFADVGAN_TF_CPP_MIN_LOG_LEVEL"
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
if USER_TF_LOG_LEVEL is not None and USER_TF_LOG_LEVEL == os.environ.get(_MARK):
  USER_TF_LOG_LEVEL = None


def argv_verbosity(argv):
  """The --verbosity / -v value on the command line (absl parses flags only later), or None."""
  for i, arg in enumerate(argv[1:], start=1):
    if arg == "--":
      break
    for flag in ("--verbosity", "-verbosity", "--v", "-v"):
      if arg == flag and i + 1 < len(argv):
        value = argv[i + 1]
      elif arg.startswith(flag + "="):
        value = arg[len(flag) + 1:]
      else:
        continue
      try:
        return int(value)
      except ValueError:
        return None
  return None


def verbose_requested(argv=None):
  """True when the command line asks for absl INFO logs or more (--verbosity >= 0, -v 1, ...)."""
  level = argv_verbosity(sys.argv if argv is None else argv)
  return level is not None and level >= 0


def is_startup_noise(line):
  """True for TF's known start-up lines (CUDA stub, cuInit, absl pre-init banner, CPU features)."""
  return bool(_NOISE.search(line))


class _FilteredStderr:
  """Context manager: fd 2 goes to a temporary file; on exit, non-noise lines are written back."""

  def __enter__(self):
    sys.stderr.flush()
    self._saved = os.dup(2)
    self._file = tempfile.TemporaryFile()
    os.dup2(self._file.fileno(), 2)
    return self

  def __exit__(self, *exc):
    try:
      sys.stderr.flush()
    finally:
      os.dup2(self._saved, 2)
      os.close(self._saved)
    self._file.seek(0)
    text = self._file.read().decode("utf-8", errors="replace")
    self._file.close()
    kept = [line for line in text.splitlines(keepends=True) if not is_startup_noise(line)]
    if kept:
      sys.stderr.write("".join(kept))
      sys.stderr.flush()
    return False


class _QuietLoader(importlib.abc.Loader):
  """Runs TensorFlow's own loader inside `_FilteredStderr`, and lists devices (cuInit) there too."""

  def __init__(self, inner):
    self._inner = inner

  def create_module(self, spec):
    return self._inner.create_module(spec)

  def exec_module(self, module):
    with _FilteredStderr():
      self._inner.exec_module(module)
      try:
        module.config.list_physical_devices()  # CUDA probing happens here, not at a later op
      except Exception:  # pylint: disable=broad-except  (never fail a command over quieting)
        pass

  def __getattr__(self, name):
    return getattr(self._inner, name)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
  """Meta-path hook that wraps the loader of the first `import tensorflow` (then removes itself)."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname != "tensorflow":
      return None
    if self in sys.meta_path:
      sys.meta_path.remove(self)
    spec = importlib.util.find_spec(fullname)
    if spec is not None and spec.loader is not None:
      spec.loader = _QuietLoader(spec.loader)
    return spec


def _quiet_startup():
  """Sets TF_CPP_MIN_LOG_LEVEL and installs the import hook; the user's choices win.

  - TF_CPP_MIN_LOG_LEVEL set in the environment: left as it is, nothing filtered.
  - --verbosity >= 0 (or -v N) on the command line: TF_CPP_MIN_LOG_LEVEL=0, nothing filtered.
  - otherwise: TF_CPP_MIN_LOG_LEVEL=2 (C++ warnings and info off) and the start-up lines dropped.
  """
  if USER_TF_LOG_LEVEL is not None:
    return
  if verbose_requested():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[_MARK] = "0"
    return
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[_MARK] = "2"
  if "tensorflow" not in sys.modules and not any(
      isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())


_quiet_startup()

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
    gin.parse_config_files_and_bindings(gin_files, gin_params, finalize_config=False)
    check_binding_names()
    if finalize:
      gin.finalize()
  except (ValueError, KeyError, SyntaxError, IOError) as e:
    if isinstance(e, errors.ConfigError):
      raise
    raise errors.ConfigError(explain_gin_error(e)) from None
  finally:
    root.removeFilter(_quiet_search)


# ---------------------------------------------------------------- gin errors in one line
_NON_FINITE = {"nan", "inf", "infinity"}


def _configurables():
  """{complete selector: gin Configurable} of everything registered (gin has no public listing)."""
  try:
    return dict(gin.config._REGISTRY._selector_map)  # pylint: disable=protected-access
  except AttributeError:  # a gin version with another layout: no suggestions
    return {}


def _short_names():
  return sorted({c.name for c in _configurables().values()} - {"macro", "constant", "singleton"})


def _accepted_parameters(configurable):
  """The parameter names `configurable` accepts, or None when it takes **kwargs we cannot follow.

  Classes are followed up their MRO while `__init__` forwards **kwargs (ASGAN -> GAN), so that
  `ASGAN.n_dis` is known and `ASGAN.epsilom` is not.
  """
  fn = configurable.wrapped
  targets = []
  if inspect.isclass(fn):
    for cls in fn.__mro__:
      init = cls.__dict__.get("__init__")
      if init is not None:
        targets.append(init)
        if not any(p.kind == p.VAR_KEYWORD for p in _signature(init).values()):
          break
    else:
      return None
  else:
    targets.append(fn)
  names = set()
  for target in targets:
    params = _signature(target)
    names.update(k for k, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
  if not any(p.kind == p.VAR_KEYWORD for p in _signature(targets[-1]).values()):
    return names - {"self"}
  return None


def _signature(fn):
  while hasattr(fn, "__wrapped__"):
    fn = fn.__wrapped__
  try:
    return dict(inspect.signature(fn).parameters)
  except (TypeError, ValueError):
    return {}


def _did_you_mean(word, candidates):
  matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
  return f"; did you mean {matches[0]}?" if matches else "."


def _suggest_parameter(scope, selector, param):
  """' (did you mean scope/selector.x?)' for a parameter `param` the configurable does not have."""
  configurable = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
  accepted = _accepted_parameters(configurable) if configurable is not None else None
  prefix = f"{scope}/" if scope else ""
  if not accepted:
    return "."
  matches = difflib.get_close_matches(param, sorted(accepted), n=1, cutoff=0.6)
  if matches:
    return f"; did you mean {prefix}{selector}.{matches[0]}?"
  return f" (it has: {', '.join(sorted(accepted))})."


def check_binding_names():
  """ConfigError for a bound parameter a configurable cannot take, also through **kwargs.

  gin itself accepts any name for a configurable with **kwargs (ASGAN passes them on to GAN), so
  `ASGAN.epsilom = 0.1` would otherwise fail only when the GAN is built, with a TypeError.
  """
  try:
    config = dict(gin.config._CONFIG)  # pylint: disable=protected-access
  except AttributeError:
    return
  registry = _configurables()
  for (scope, selector), params in config.items():
    configurable = registry.get(selector)
    if configurable is None:
      continue
    accepted = _accepted_parameters(configurable)
    if accepted is None:
      continue
    for param in params:
      if param not in accepted:
        prefix = f"{scope}/" if scope else ""
        raise errors.ConfigError(
            f"Unknown gin binding {prefix}{configurable.name}.{param}: {configurable.name} has no "
            f"parameter {param!r}{_suggest_parameter(scope, configurable.name, param)}")


def _location(text):
  """'--gin_param ...' or 'file X line N' from gin's appended location lines."""
  m = re.search(r"In bindings string line \d+\n\s*(.*)", text)
  if m:
    return f"--gin_param '{m.group(1).strip()}'", m.group(1).strip()
  m = re.search(r'In file "([^"]*)", line (\d+)\n\s*(.*)', text)
  if m:
    return f"{m.group(1)} line {m.group(2)}", m.group(3).strip()
  return "", ""


def explain_gin_error(e):
  """One line for a gin parse error: what is wrong, where, and the closest valid name if any."""
  text = str(e)
  if isinstance(e, SyntaxError):
    line = (e.text or "").strip()
    where = (f"{e.filename} line {e.lineno}" if e.filename else f"--gin_param '{line}'"
             if line else "gin bindings")
    token = re.search(r"Failed to parse token '([^']*)'", str(e.msg))
    if token:
      value = token.group(1)
      binding = line.split("=", 1)[0].strip() if "=" in line else "the binding"
      if value.lstrip("+-").lower() in _NON_FINITE:
        return (f"Bad gin value {value!r} in {where}: gin has no nan/inf literal, and "
                f"hyperparameters must be finite. Write a finite number, e.g. {binding} = 0.01.")
      return (f"Bad gin value {value!r} in {where}: strings need quotes (e.g. "
              f"{binding} = '{value}'), numbers must be plain literals (1e-4, 0.5).")
    return f"Bad gin syntax in {where}: {str(e.msg).splitlines()[0]}"
  first = text.splitlines()[0] if text else type(e).__name__
  where, line = _location(text)
  at = f" (in {where})" if where else ""
  scope = ""
  key = line.split("=", 1)[0].strip() if "=" in line else ""
  if "/" in key:
    scope = key.rsplit("/", 1)[0].lstrip("@")
  m = re.match(r"No configurable matching '([^']*)'", first)
  if m:
    selector = m.group(1)
    name = selector.split(".")[-1] if "." in selector else selector
    return (f"Unknown gin configurable {selector!r}{at}{_did_you_mean(name, _short_names())}")
  m = re.match(r"No configurable matching reference '@([^'(]*)(\(\))?'", first)
  if m:
    return (f"Unknown gin reference '@{m.group(1)}'{at}"
            f"{_did_you_mean(m.group(1).split('/')[-1], _short_names())}")
  m = re.match(r"Configurable '([^']*)' doesn't have a parameter named '([^']*)'", first)
  if m:
    selector, param = m.groups()
    prefix = f"{scope}/" if scope else ""
    return (f"Unknown gin binding {prefix}{selector}.{param}{at}: {selector} has no parameter "
            f"{param!r}{_suggest_parameter(scope, selector, param)}")
  return f"Bad gin config{at}: {first}"


def _quiet_search(record):
  """Drops gin's 'Path not found' lines for search-path misses during `include` resolution."""
  return not str(record.msg).startswith("Path not found")


_GIN_CONTEXT = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)(?: in scope '[^']*')?")


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


def print_outputs(summary, rows):
  """The end-of-command report: one summary line, then one aligned `label: path` line per output.

    restored /tmp/run/checkpoints/ckpt-2 (step 2); wrote 64 samples
      PNG grid:  /tmp/run/sample_out/grid_000.png
      npz:       /tmp/run/sample_out/samples.npz

  Args:
    summary: the first line.
    rows: (label, value) pairs; a None value is skipped.
  """
  rows = [(label, value) for label, value in rows if value is not None]
  print(summary)
  width = max((len(label) for label, _ in rows), default=0) + 1
  for label, value in rows:
    print(f"  {label + ':':<{width}}  {value}")
  sys.stdout.flush()
