"""Checks gin files and bindings before TensorFlow is imported, so that a typo costs no TF start-up.

gin can only check a binding against a registered configurable, and registering tfadvgan's
configurables means importing the modules that define them, which import TensorFlow (several
seconds). This module reads the same facts from the source instead: it parses tfadvgan's files with
`ast` (no import) for every `@gin.configurable` and `gin.external_configurable`, with the parameters
it accepts (following `**kwargs` up the class bases, as `config.check_binding_names` does), then
parses the user's config with gin's own parser (`gin.config_parser.ConfigParser`, which needs no
registry) and checks every binding, block and `@reference` against that index. The messages are
`tfadvgan.config`'s. tests/test_cli_help.py checks that the index equals gin's registry.

Anything it cannot judge without importing (gs:// files, names it does not know to exist outside
tfadvgan such as `import` statements' modules) is left to the full check, which runs after the
import as before.
"""

import ast
import functools
import os

import gin.config_parser

from tfadvgan import config
from tfadvgan import errors

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Configurables gin itself registers.
GIN_BUILTINS = {"gin.macro": frozenset({"value"}), "gin.constant": frozenset(),
                "gin.singleton": frozenset({"constructor"})}


def _decorator_name(node):
  """('configurable', call) for `@gin.configurable` / `@gin.configurable(...)`, else None."""
  call = node if isinstance(node, ast.Call) else None
  target = node.func if call else node
  if (isinstance(target, ast.Attribute) and target.attr == "configurable"
      and isinstance(target.value, ast.Name) and target.value.id == "gin"):
    return call
  return False


def _call_options(call):
  """(name or None, denylist) of a gin.configurable(...) / external_configurable(...) call."""
  name, denylist = None, set()
  if call is None:
    return name, denylist
  if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
    name = call.args[0].value
  for kw in call.keywords:
    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
      name = kw.value.value
    elif kw.arg == "denylist":
      denylist = set(ast.literal_eval(kw.value))
  return name, denylist


def _parameters(fn):
  """(names, takes **kwargs) of a FunctionDef."""
  args = fn.args
  names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
  return set(names) - {"self"}, args.kwarg is not None


def _module_name(path):
  rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _scan():
  """({full selector: (node, denylist)}, {class name: ClassDef}) of tfadvgan's source files."""
  found, classes = {}, {}
  for root, _, files in os.walk(PACKAGE):
    for filename in sorted(files):
      if not filename.endswith(".py"):
        continue
      path = os.path.join(root, filename)
      with open(path, encoding="utf-8") as f:
        text = f.read()
      if "configurable" not in text and "class " not in text:
        continue
      tree = ast.parse(text, filename=path)
      module = _module_name(path)
      functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
      for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
          classes.setdefault(node.name, node)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
          for dec in node.decorator_list:
            call = _decorator_name(dec)
            if call is not False:
              name, denylist = _call_options(call)
              found[f"{module}.{name or node.name}"] = (node, denylist)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "external_configurable" and node.args
              and isinstance(node.args[0], ast.Name) and node.args[0].id in functions):
          name, denylist = _call_options(node)
          fn = functions[node.args[0].id]
          found[f"{module}.{name or fn.name}"] = (fn, denylist)
  return found, classes


def _accepted(node, classes):
  """Parameter names `node` accepts, or None when **kwargs leads outside tfadvgan."""
  if isinstance(node, ast.FunctionDef):
    names, var_kw = _parameters(node)
    return None if var_kw else names
  names, seen, todo = set(), set(), [node]
  while todo:  # left-first walk of the bases while __init__ forwards **kwargs (as the MRO)
    cls = todo.pop(0)
    if cls.name in seen:
      continue
    seen.add(cls.name)
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                None)
    if init is not None:
      params, var_kw = _parameters(init)
      names |= params
      if not var_kw:
        return names
    bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None) for b in cls.bases]
    if not bases or any(b not in classes for b in bases):
      return None
    todo = [classes[b] for b in bases] + todo
  return None


@functools.lru_cache(maxsize=None)
def index():
  """{full selector ('tfadvgan.gans.as_gan.ASGAN'): accepted parameter names or None (any)}."""
  found, classes = _scan()
  out = dict(GIN_BUILTINS)
  for selector, (node, denylist) in found.items():
    accepted = _accepted(node, classes)
    out[selector] = None if accepted is None else frozenset(accepted - denylist)
  return out


def _match(selector):
  """The index entries gin's selector matching would find for `selector` (a dotted suffix)."""
  parts = selector.split(".")
  return [k for k in index() if k.split(".")[-len(parts):] == parts]


def _short_names():
  return sorted({k.rsplit(".", 1)[-1] for k in index()} - {"macro", "constant", "singleton"})


class _Delegate(gin.config_parser.ParserDelegate):
  """Records @references; macros and references stand for themselves."""

  def __init__(self):
    self.references = []

  def configurable_reference(self, scoped_configurable_name, evaluate):
    self.references.append(scoped_configurable_name)
    return f"@{scoped_configurable_name}"

  def macro(self, macro_name):
    return f"%{macro_name}"


def _where(location, param_text):
  if param_text is not None:
    return f" (in --gin_param '{param_text.strip()}')"
  return f" (in {location.filename} line {location.line_num})"


def _check_statements(parser, delegate, param_text, search_dirs):
  for statement in parser:
    at = _where(statement.location, param_text)
    for reference in delegate.references:
      if not _match(reference.split("/")[-1]):
        raise errors.ConfigError(config.unknown_reference_message(reference, at, _short_names()))
    delegate.references.clear()
    if isinstance(statement, gin.config_parser.IncludeStatement):
      path = next((os.path.join(d, statement.filename) for d in search_dirs
                   if os.path.isfile(os.path.join(d, statement.filename))), None)
      if path is not None:
        _check_file(path, search_dirs)
      continue
    if isinstance(statement, gin.config_parser.BlockDeclaration):
      if not _match(statement.selector):
        raise errors.ConfigError(
            config.unknown_configurable_message(statement.selector, at, _short_names()))
      continue
    if not isinstance(statement, gin.config_parser.BindingStatement) or not statement.arg_name:
      continue  # imports (left to gin), macro definitions
    matches = _match(statement.selector)
    if not matches:
      raise errors.ConfigError(
          config.unknown_configurable_message(statement.selector, at, _short_names()))
    accepted = index()[matches[0]] if len(matches) == 1 else None
    if accepted is not None and statement.arg_name not in accepted:
      raise errors.ConfigError(config.unknown_parameter_message(
          statement.scope, statement.selector.split(".")[-1], statement.arg_name, at,
          sorted(accepted)))


def _parse(text_or_file, delegate):
  try:
    return gin.config_parser.ConfigParser(text_or_file, delegate)
  except SyntaxError as e:
    raise errors.ConfigError(config.explain_gin_error(e)) from None


def _check_file(path, search_dirs):
  delegate = _Delegate()
  with open(path, encoding="utf-8") as f:
    try:
      _check_statements(_parse(f, delegate), delegate, None, search_dirs)
    except SyntaxError as e:
      raise errors.ConfigError(config.explain_gin_error(e)) from None


def check(gin_files, gin_params):
  """ConfigError for what gin would refuse in these files and bindings, found without importing
  TensorFlow: syntax, unknown configurables, parameters and references. Files on filesystems
  other than the local one are left to the full check."""
  for path in gin_files:
    if "://" in path:
      continue
    errors.check(os.path.isfile(path), f"--gin_file {path} does not exist.")
    _check_file(path, config.search_paths(path))
  for text in gin_params:
    delegate = _Delegate()
    try:
      _check_statements(_parse(text, delegate), delegate, text, [os.getcwd()])
    except SyntaxError as e:
      raise errors.ConfigError(config.explain_gin_error(e)) from None
