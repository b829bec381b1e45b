"""Shared absl/gin plumbing of the command-line scripts: flags, config parsing, clean errors.

Every CLI imports this module first. Importing it quiets TensorFlow's start-up (see
`_quiet_startup`) before TensorFlow itself is imported.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import threading


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


# TensorFlow's C++ ERROR lines when a peer of a multi-worker run dies or hangs, before the Python
# error that train.py turns into one line ("worker 2 is unreachable; ..."): an abort log line, then
# its continuation lines (gRPC details, the coordination service's "The tasks have crashed ..."),
# up to the next line that starts a record of its own (a log line, a Python traceback, ours).
_PEER_ABORT = re.compile(r"^E\d{4} .*(ring_alg\.cc:\d+\] Aborting |base_collective_executor\.cc:"
                         r"\d+\] BaseCollectiveExecutor::StartAbort )")
_NEW_RECORD = re.compile(r"^([IWEF]\d{4} |Traceback |\[tfadvgan\]|error: )")


class PeerAbortFilter:
  """Context manager: fd 2 goes through a pipe; a thread drops TensorFlow's collective-abort ERROR
  lines (`_PEER_ABORT` and their continuation lines) and writes every other line through at once.
  Anything after an abort line that does not start a record (`_NEW_RECORD`) is taken for its
  continuation and dropped too.

  Used by train.py under TF_CONFIG unless the user asked for TF's logs (TF_CPP_MIN_LOG_LEVEL set,
  or --verbosity >= 0).
  """

  def __enter__(self):
    sys.stderr.flush()
    self._saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    self._thread = threading.Thread(target=self._forward, args=(read_fd,), daemon=True)
    self._thread.start()
    return self

  def _forward(self, read_fd):
    dropping = False
    with os.fdopen(read_fd, "rb") as pipe:
      for raw in pipe:
        line = raw.decode("utf-8", errors="replace")
        dropping = bool(_PEER_ABORT.search(line)) or (dropping and not _NEW_RECORD.search(line))
        if not dropping:
          os.write(self._saved, raw)

  def __exit__(self, *exc):
    sys.stderr.flush()
    os.dup2(self._saved, 2)  # closes the pipe's last write end: the thread reads to EOF and ends
    self._thread.join(timeout=10)
    os.close(self._saved)
    return False


def filter_peer_aborts():
  """A `PeerAbortFilter` for a multi-worker process (TF_CONFIG set) whose user did not ask for
  TensorFlow's logs; else a no-op context."""
  if "TF_CONFIG" in os.environ and USER_TF_LOG_LEVEL is None and not verbose_requested():
    return PeerAbortFilter()
  return contextlib.nullcontext()


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

from absl import flags  # noqa: E402

from tfadvgan import errors  # noqa: E402
# The gin plumbing is library code (tfadvgan.config); the scripts keep calling it through here.
from tfadvgan.config import check_binding_names  # noqa: E402,F401
from tfadvgan.config import explain_gin_error  # noqa: E402,F401
from tfadvgan.config import parse_gin  # noqa: E402,F401
from tfadvgan.config import strip_gin_context  # noqa: E402,F401

FLAGS = flags.FLAGS


_GIN_FLAGS = ("gin_file", "gin_param")


def define_gin_flags():
  flags.DEFINE_multi_string("gin_file", [], "Gin config file(s), applied in order.")
  flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. 'train.num_steps = 100'.")


def run(main, module_name):
  """`app.run(main)` for the script of the CLI module `module_name`.

  absl's `--help` shows the docstring of `__main__` and the key flags of the main module only; the
  scripts are two-line wrappers, so the module's docstring and its key flags (its own, and the gin
  flags `define_gin_flags` defines here) are made the main module's.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  main_module = sys.modules["__main__"]
  module = sys.modules[module_name]
  if main_module is not module:
    main_module.__doc__ = module.__doc__
    gin_flags = [FLAGS[name] for name in _GIN_FLAGS
                 if name in FLAGS and FLAGS.find_module_defining_flag(name) == __name__]
    for flag in FLAGS.get_key_flags_for_module(module_name) + gin_flags:
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _ScriptLogFormat:
  """Filter and formatter of absl's handler in a script: tfadvgan's own records (INFO and up) as
  `[tfadvgan] message` (`[tfadvgan] warning: message` for warnings), other libraries' WARNING and
  up in absl's format, their INFO dropped."""

  def __init__(self, absl_format):
    self.absl_format = absl_format

  @staticmethod
  def ours(record):
    return record.pathname.startswith(_PACKAGE)

  def filter(self, record):
    import logging  # pylint: disable=g-import-not-at-top
    return self.ours(record) or record.levelno >= logging.WARNING

  def format(self, record):
    import logging  # pylint: disable=g-import-not-at-top
    if not self.ours(record):
      return self.absl_format.format(record)
    kind = "warning: " if record.levelno == logging.WARNING else ""
    return f"[tfadvgan] {kind}{record.getMessage()}"


def show_library_logs():
  """What a script shows by default (no --verbosity): the library's absl INFO lines and every
  library's warnings, as `_ScriptLogFormat` writes them."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.INFO)
  handler = absl_logging.get_absl_handler()
  script_format = _ScriptLogFormat(absl_logging.PythonFormatter())
  handler.addFilter(script_format)
  handler.setFormatter(script_format)


def _check_gin_flags():
  """--gin_file / --gin_param checked before TensorFlow is imported (`gin_check`)."""
  from tfadvgan.cli import gin_check  # pylint: disable=g-import-not-at-top
  files = list(FLAGS.gin_file) if "gin_file" in FLAGS else []
  params = list(FLAGS.gin_param) if "gin_param" in FLAGS else []
  if files or params:
    gin_check.check(files, params)


def main_wrapper(fn):
  """Runs `fn(argv)` after checking its gin flags; a ConfigError prints one message and exits with
  status 2, Ctrl-C 130."""
  def wrapped(argv):
    if not FLAGS["verbosity"].present:
      show_library_logs()
    try:
      _check_gin_flags()
      return fn(argv)
    except errors.ConfigError as e:
      print(f"error: {strip_gin_context(str(e))}", file=sys.stderr)
      sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own)
      print("interrupted", file=sys.stderr)
      sys.exit(130)
    except Exception as e:  # pylint: disable=broad-except
      message = out_of_memory_message(e)
      if message is None:
        raise
      print(f"error: {message}", file=sys.stderr)
      sys.exit(2)
  return wrapped


def out_of_memory_message(error):
  """One line for TensorFlow's ResourceExhaustedError (an allocation the device cannot hold: a
  batch, a width or a resolution out of proportion with the machine), else None. The kernel's
  OOM killer (SIGKILL, exit status 137) cannot be caught."""
  tf = sys.modules.get("tensorflow")
  if tf is None or not isinstance(error, tf.errors.ResourceExhaustedError):
    return None
  found = re.search(r"OOM when allocating tensor with shape\s*\[([^\]]*)\]", str(error))
  what = f" (a tensor of shape [{found.group(1)}])" if found else ""
  return (f"out of memory{what}: the batch, the networks' width or the resolution is too large "
          "for this device; reduce train.batch_size, build_generator.width / "
          "build_discriminator.width, or spread the batch over more devices.")




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
