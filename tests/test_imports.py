"""The package's import graph: every `import` of a tfadvgan module, at module level and inside
functions, read from the source with `ast` (nothing is imported). The layers run one way
(docs/design.md, "Layers and imports"): cli -> training -> metrics -> gans -> (losses, penalties,
attacks, augment, models, data, distribute, optimizers) -> (errors, io, images, rng, ops, config).
metrics never imports training; training imports metrics only for its periodic eval and
diagnostics. The package's own `__init__` imports nothing at import time: its public names load
on first use (the last test)."""

import ast
import os

import pytest

PACKAGE = "tfadvgan"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)


def _module_name(path, root):
  rel = os.path.relpath(path, os.path.dirname(root))[:-len(".py")].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def package_modules(root=ROOT):
  """{module name: source path} for every .py file under `root`."""
  modules = {}
  for folder, _, files in os.walk(root):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        modules[_module_name(path, root)] = path
  return modules


def import_edges(modules):
  """{module: {imported tfadvgan module}} over every import statement anywhere in the file.

  `from a.b import c` names module a.b.c when that is a module, else a.b; `import a.b` names a.b.
  """
  edges = {}
  for name, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import
          parts = name.split(".")
          keep = parts if path.endswith("__init__.py") else parts[:-1]
          keep = keep[:len(keep) - node.level + 1]
          base = ".".join(keep + ([base] if base else []))
        for alias in node.names:
          full = f"{base}.{alias.name}"
          targets.add(full if full in modules else base)
    edges[name] = {t for t in targets if t in modules and t != name}
  return edges


def find_cycle(edges):
  """One import cycle as a list of modules, or None (depth-first search)."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(edges.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    state[node] = "done"
    stack.pop()
    return None

  for node in sorted(edges):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


# Rank of each part of the package: a module may import only modules of its own part or of a
# lower rank (within a part, `find_cycle` keeps the order acyclic).
LAYERS = {
    "cli": 6,
    "training": 5,
    "metrics": 4,
    "gans": 3,
    "losses": 2, "penalties": 2, "attacks": 2, "models": 2, "data": 2, "distribute": 2,
    "optimizers": 2, "augment": 2,
    "errors": 1, "storage": 1, "images": 1, "rng": 1, "tensor_ops": 1, "config": 1,
    "__init__": 0,
}


def layer(module):
  parts = module.split(".")
  return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def backward_imports(edges):
  """[(module, imported)] where the imported module sits in a higher layer."""
  return sorted((a, b) for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def test_edges_are_read_from_every_kind_of_import(tmp_path):
  pkg = tmp_path / "tfadvgan"
  (pkg / "sub").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "sub" / "__init__.py").write_text("from tfadvgan.sub import b\n")
  (pkg / "sub" / "a.py").write_text("def f():\n  from . import b\n  import tfadvgan.c\n")
  (pkg / "sub" / "b.py").write_text("from tfadvgan.c import thing\n")
  (pkg / "c.py").write_text("def g():\n  from tfadvgan.sub import a\n")
  modules = package_modules(str(pkg))
  edges = import_edges(modules)
  assert edges["tfadvgan.sub.a"] == {"tfadvgan.sub.b", "tfadvgan.c"}
  assert edges["tfadvgan.sub.b"] == {"tfadvgan.c"}
  assert edges["tfadvgan.sub"] == {"tfadvgan.sub.b"}
  cycle = find_cycle(edges)  # c -> sub.a (inside a function) -> c
  assert cycle is not None and cycle[0] == cycle[-1] and "tfadvgan.c" in cycle
  del edges["tfadvgan.c"]
  assert find_cycle(edges) is None


def test_package_has_no_import_cycle():
  cycle = find_cycle(import_edges(package_modules()))
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_library_never_imports_the_cli():
  edges = import_edges(package_modules())
  offenders = sorted((a, b) for a, targets in edges.items() for b in targets
                     if b.startswith("tfadvgan.cli") and not a.startswith("tfadvgan.cli"))
  assert not offenders, offenders


def test_layers_run_one_way():
  assert not backward_imports(import_edges(package_modules()))


def test_every_module_has_a_layer():
  for module in package_modules():
    assert layer(module) >= 0  # KeyError names a module outside LAYERS


@pytest.mark.parametrize("module", ["tensorflow.python", "keras.src"])
def test_no_private_framework_imports(module):
  """Only public TensorFlow / Keras APIs (their private modules change between releases)."""
  for name, path in package_modules().items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      assert not any(n == module or n.startswith(module + ".") for n in names), (name, module)


def test_the_one_internal_tf_class_is_still_exported():
  """`distribute.PerReplicaState` subclasses `tf.__internal__.tracking.Trackable` (the one TF class
  that lets an object write a tensor of its own making to a checkpoint; docs/design.md, "Layers and
  imports"). If a TensorFlow release moves it, this names what broke."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  trackable = getattr(getattr(getattr(tf, "__internal__", None), "tracking", None), "Trackable",
                      None)
  assert trackable is not None, (
      "tf.__internal__.tracking.Trackable is gone from this TensorFlow; distribute.PerReplicaState "
      "(Fast-RobGAN's checkpointed delta) needs another base class.")
  for method in ("_serialize_to_tensors", "_restore_from_tensors"):
    assert callable(getattr(trackable, method, None)), f"Trackable.{method} is gone"
  from tfadvgan import distribute  # pylint: disable=g-import-not-at-top
  assert issubclass(distribute.PerReplicaState, trackable)


def test_the_package_exports_lazily_and_never_from_the_cli():
  """`tfadvgan/__init__.py` imports no tfadvgan module at import time (so `import tfadvgan`, which
  every submodule import runs first, stays cheap and outside the layers); its public names are
  imported on first use, from library modules only (read from its `_NAMES` table)."""
  path = os.path.join(ROOT, "__init__.py")
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  assert not import_edges(package_modules())["tfadvgan"]
  table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
               and any(getattr(t, "id", None) == "_NAMES" for t in node.targets))
  targets = {value.value for value in table.values}
  modules = package_modules()
  assert targets and targets <= set(modules), targets - set(modules)
  assert not any(t.startswith("tfadvgan.cli") for t in targets)
