"""Loads tf-gan's evaluation namespace without importing all of tf-gan.

``import tensorflow_gan`` fails on TensorFlow >= 2.16: the package ``__init__`` imports
``tensorflow_gan.python.estimator`` and ``tensorflow_gan.python.train``, which subclass classes of
the removed ``tf.estimator`` (upstream tensorflow/gan#55). The evaluation code we need
(``tensorflow_gan/python/eval``) does not use the estimator: it imports only ``eval_utils``,
``classifier_metrics``, ``inception_metrics`` (tensorflow_hub), ``sliced_wasserstein``
(``python/contrib_utils.py``) and ``summaries`` (``python/namedtuples.py``).

``load_tfgan_eval()`` therefore

1. uses the real package when it imports (a tf-gan release that fixed the issue, or a TF that
   still has ``tf.estimator``);
2. otherwise registers two stub *package* modules in ``sys.modules``, ``tensorflow_gan`` and
   ``tensorflow_gan.python``, whose ``__path__`` point at the installed directories (so submodules
   are read from the real files), and imports ``tensorflow_gan.python.eval`` directly. The package
   ``__init__`` files (and with them ``estimator`` and ``train``) are never executed. The stubs stay
   registered (``import tensorflow_gan as tfgan; tfgan.eval`` then works); any other attribute of
   the stubs raises an AttributeError that explains why it is missing.

Only three functions are used by tfadvgan (see ``REQUIRED_FUNCTIONS``); they are checked after
loading. A changed layout raises ``ConfigError`` naming the version known to work.
"""
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
import types

from tfadvgan.errors import ConfigError

KNOWN_GOOD_VERSION = "2.1.0"

REQUIRED_FUNCTIONS = (
    "frechet_classifier_distance_from_activations",
    "classifier_score_from_logits",
    "kernel_classifier_distance_and_std_from_activations",
)

# Files the stub loader reads, relative to the installed ``tensorflow_gan`` directory.
REQUIRED_FILES = (
    os.path.join("python", "eval", "__init__.py"),
    os.path.join("python", "eval", "classifier_metrics.py"),
    os.path.join("python", "eval", "eval_utils.py"),
)

_PACKAGE = "tensorflow_gan"
_CACHE = {}


def _layout_error(detail, cause=None):
  message = (
      f"The installed tensorflow-gan layout changed ({detail}); tfadvgan loads "
      f"tensorflow_gan/python/eval directly because `import tensorflow_gan` fails on "
      f"TensorFlow >= 2.16 (tensorflow/gan#55). Install the version known to work: "
      f"`pip install tensorflow-gan=={KNOWN_GOOD_VERSION}`.")
  if cause is not None:
    message += f" Cause: {type(cause).__name__}: {cause}"
  return ConfigError(message)


def _validate(namespace):
  """Returns ``namespace`` if it has every required function, else raises ConfigError."""
  missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(namespace, f, None))]
  if missing:
    raise _layout_error(f"tensorflow_gan eval lacks {', '.join(missing)}")
  return namespace


def _installed_version():
  try:
    return importlib.metadata.version("tensorflow-gan")
  except importlib.metadata.PackageNotFoundError:
    return None


def _tf_has_estimator():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return getattr(tf, "estimator", None) is not None
  except Exception:  # pylint: disable=broad-except  (lazy loader failing to import)
    return False


def _tfgan_modules():
  return {k: v for k, v in sys.modules.items() if k == _PACKAGE or k.startswith(_PACKAGE + ".")}


def _try_real_import():
  """Imports the real package when it can work; returns its eval namespace or None.

  tf-gan 2.1.0 without ``tf.estimator`` is known to fail, so it is not even tried (that would
  execute the estimator/train modules up to their crash). Any failure is rolled back.
  """
  if not _tf_has_estimator() and _installed_version() == KNOWN_GOOD_VERSION:
    return None
  before = _tfgan_modules()
  try:
    tfgan = importlib.import_module(_PACKAGE)
    return tfgan.eval
  except Exception:  # pylint: disable=broad-except
    for name in set(_tfgan_modules()) - set(before):
      del sys.modules[name]
    sys.modules.update(before)
    return None


class _StubPackage(types.ModuleType):
  """A package module that only provides ``__path__`` (and ``eval`` once loaded)."""

  def __getattr__(self, attr):
    if attr.startswith("__"):
      raise AttributeError(attr)
    raise AttributeError(
        f"{self.__name__}.{attr} is unavailable: tfadvgan loaded only tensorflow_gan's eval "
        f"module, because the rest of tf-gan {KNOWN_GOOD_VERSION} needs the removed tf.estimator "
        f"(tensorflow/gan#55).")


def _make_stub(name, path):
  spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
  spec.submodule_search_locations = [path]
  module = _StubPackage(name)
  module.__spec__ = spec
  module.__path__ = [path]
  module.__package__ = name
  module.__file__ = None
  module.__tfadvgan_stub__ = True
  return module


def _package_dir():
  try:
    spec = importlib.util.find_spec(_PACKAGE)
  except (ImportError, ValueError) as e:
    raise ConfigError(
        f"tensorflow-gan is not importable ({e}). Install it: "
        f"`pip install tensorflow-gan=={KNOWN_GOOD_VERSION}`.") from None
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError(
        "tensorflow-gan is not installed. Install it: "
        f"`pip install tensorflow-gan=={KNOWN_GOOD_VERSION}`.")
  return list(spec.submodule_search_locations)[0]


def _load_with_stubs(package_dir, isolated):
  """Imports ``tensorflow_gan.python.eval`` from ``package_dir`` behind stub packages.

  Args:
    package_dir: the ``tensorflow_gan`` package directory.
    isolated: if True, ``sys.modules`` is restored afterwards (the loaded eval module keeps
      references to everything it imported, so it keeps working).

  Returns:
    The eval module.
  """
  missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(package_dir, f))]
  if missing:
    raise _layout_error(f"missing {', '.join(missing)} under {package_dir}")
  before = _tfgan_modules()
  if isolated:
    for name in before:
      del sys.modules[name]
  root = _make_stub(_PACKAGE, package_dir)
  python = _make_stub(_PACKAGE + ".python", os.path.join(package_dir, "python"))
  root.python = python
  sys.modules[_PACKAGE] = root
  sys.modules[_PACKAGE + ".python"] = python
  ok = False
  try:
    eval_module = importlib.import_module(_PACKAGE + ".python.eval")
    if getattr(eval_module, "__file__", None) and not os.path.abspath(
        eval_module.__file__).startswith(os.path.abspath(package_dir)):
      raise _layout_error(f"eval was imported from {eval_module.__file__}, not {package_dir}")
    _validate(eval_module)
    root.eval = eval_module
    python.eval = eval_module
    ok = True
    return eval_module
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (any import-time failure)
    raise _layout_error("importing tensorflow_gan.python.eval failed", e) from e
  finally:
    if isolated or not ok:
      for name in list(_tfgan_modules()):
        del sys.modules[name]
      sys.modules.update(before)


def load_tfgan_eval(package_dir=None):
  """Returns tf-gan's eval namespace (``tensorflow_gan.python.eval``), cached.

  Args:
    package_dir: None to use the installed ``tensorflow_gan`` (the result is cached and the stub
      packages stay registered); or a ``tensorflow_gan`` package directory to load from, in
      isolation (``sys.modules`` is left unchanged, nothing is cached). Meant for tests.

  Returns:
    A module with at least ``REQUIRED_FUNCTIONS``.

  Raises:
    ConfigError: tf-gan is missing or its layout is not the one this loader knows.
  """
  if package_dir is not None:
    return _load_with_stubs(os.fspath(package_dir), isolated=True)
  if "eval" in _CACHE:
    return _CACHE["eval"]
  existing = sys.modules.get(_PACKAGE + ".python.eval")
  if existing is not None and hasattr(existing, REQUIRED_FUNCTIONS[0]):
    namespace = existing
  else:
    namespace = _try_real_import()
    if namespace is None:
      namespace = _load_with_stubs(_package_dir(), isolated=False)
  _CACHE["eval"] = _validate(namespace)
  return namespace
