"""Gin plumbing shared by the library and the scripts: parsing config files and bindings with
one-line errors (unknown names with a "did you mean"; a renamed knob's old name with its new one).

Library code (`training.benchmark`, the fine-tuner) parses gin through here, so nothing below the
CLI imports `tfadvgan.cli`.
"""

import difflib
import inspect
import logging
import os
import re

import gin

from tfadvgan import errors

# Knobs renamed so that one idea has one name across the methods: {"configurable.old": "new"}. An
# old name is refused like any unknown binding, with its new name as the suggestion.
RENAMED = {
    "ASGAN.pgd_step_size": "step_size",
    "ASGAN.pgd_random_start": "random_start",
    "RobGAN.pgd_step_size": "step_size",
    "DAT.step": "direction",
    "DAT.lambda_clean": "clean_weight",
    "DAT.lambda_adv": "adv_weight",
    "finetune_classifier.lam": "fake_weight",
    "finetune_classifier.pgd_step_size": "step_size",
}


def search_paths(path):
  """Where gin looks for the files `path` includes: `include 'common/x.gin'` resolves against the
  gin_configs/ directory that holds `path` (if any), then against the working directory."""
  directory = os.path.dirname(os.path.abspath(path))
  while directory != os.path.dirname(directory):
    if os.path.basename(directory) == "gin_configs":
      return [directory, os.getcwd()]
    directory = os.path.dirname(directory)
  return [os.getcwd()]


def parse_gin(gin_files, gin_params, finalize=True):
  """Parses gin files and bindings; unknown names and missing files become ConfigErrors."""
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top  (also lets gin read gs:// files)
  for path in gin_files:
    errors.check(storage.exists(path), f"--gin_file {path} does not exist.")
    for directory in search_paths(path)[:-1]:
      gin.add_config_file_search_path(directory)
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


def _suggest_parameter(scope, selector, param, accepted=None):
  """'; did you mean scope/selector.x?' for a parameter `param` the configurable does not have:
  its new name when it was renamed (`RENAMED`), else the closest accepted name.

  `accepted`: the configurable's parameter names; by default those of the registered one.
  """
  if accepted is None:
    configurable = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
    accepted = _accepted_parameters(configurable) if configurable is not None else None
  prefix = f"{scope}/" if scope else ""
  renamed = RENAMED.get(f"{selector.split('.')[-1]}.{param}")
  if renamed is not None:
    return f"; did you mean {prefix}{selector}.{renamed}?"
  if not accepted:
    return "."
  matches = difflib.get_close_matches(param, sorted(accepted), n=1, cutoff=0.6)
  if matches:
    return f"; did you mean {prefix}{selector}.{matches[0]}?"
  return f" (it has: {', '.join(sorted(accepted))})."


def unknown_configurable_message(selector, at, names=None):
  """'Unknown gin configurable ...' with the closest of `names` (default: the registered ones)."""
  name = selector.split(".")[-1]
  return (f"Unknown gin configurable {selector!r}{at}"
          f"{_did_you_mean(name, _short_names() if names is None else names)}")


def unknown_reference_message(reference, at, names=None):
  """'Unknown gin reference '@x'...' with the closest of `names` (default: the registered ones)."""
  return (f"Unknown gin reference '@{reference}'{at}"
          f"{_did_you_mean(reference.split('/')[-1], _short_names() if names is None else names)}")


def unknown_parameter_message(scope, selector, param, at, accepted=None):
  """'Unknown gin binding scope/selector.param ...: selector has no parameter ...'."""
  prefix = f"{scope}/" if scope else ""
  return (f"Unknown gin binding {prefix}{selector}.{param}{at}: {selector} has no parameter "
          f"{param!r}{_suggest_parameter(scope, selector, param, accepted)}")


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
    return unknown_configurable_message(m.group(1), at)
  m = re.match(r"No configurable matching reference '@([^'(]*)(\(\))?'", first)
  if m:
    return unknown_reference_message(m.group(1), at)
  m = re.match(r"Configurable '([^']*)' doesn't have a parameter named '([^']*)'", first)
  if m:
    selector, param = m.groups()
    return unknown_parameter_message(scope, selector, param, at)
  return f"Bad gin config{at}: {first}"


def _quiet_search(record):
  """Drops gin's 'Path not found' lines for search-path misses during `include` resolution."""
  return not str(record.msg).startswith("Path not found")


_GIN_CONTEXT = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)(?: in scope '[^']*')?")


def strip_gin_context(message):
  """Drops the "In call to configurable 'x' (<function ...>)" lines gin adds to exceptions."""
  return _GIN_CONTEXT.sub("", message).strip()


# ---------------------------------------------------------------- bindings that are not defaults
def _defaults(configurable):
  """{parameter: default} of a configurable's signature (a class: its __init__)."""
  params = _signature(configurable.wrapped)
  return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _hparam_value(value):
  """A TensorBoard hparams value (bool, int, float or str) for a bound gin value."""
  if isinstance(value, (bool, int, float, str)):
    return value
  return repr(value) if isinstance(value, gin.config.ConfigurableReference) else str(value)


def non_default_bindings():
  """{'scope/name.param': value} of the bound gin parameters whose value is not the parameter's
  default (parameters passed on through **kwargs, whose default is not in sight, count as set).
  Values are bool, int, float or str (others as their text), for TensorBoard's hparams."""
  out = {}
  registry = _configurables()
  config = dict(gin.config._CONFIG)  # pylint: disable=protected-access
  for (scope, selector), params in config.items():
    configurable = registry.get(selector)
    name = configurable.name if configurable is not None else selector
    defaults = _defaults(configurable) if configurable is not None else {}
    for param, value in params.items():
      if param in defaults and type(defaults[param]) is type(value) and defaults[param] == value:
        continue
      out[f"{scope + '/' if scope else ''}{name}.{param}"] = _hparam_value(value)
  return dict(sorted(out.items()))
