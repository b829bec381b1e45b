"""The source registry and `load`, the one entry point for datasets.

A source turns a name (`"cifar10"`, `"idx"`, `"ring"`, ...) plus a few options into a
`tfadvgan.data.Source`. Loaders register themselves with `register`; `tfadvgan.data` imports every
loader module so `SOURCES` is complete once the package is imported. `load` then applies what
every source shares: class selection, truncation, the labels requirement and the not-empty check.
"""
import dataclasses

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import sources

AUTOTUNE = tf.data.AUTOTUNE

# name -> loader function; the loader's options and splits live in _SPECS.
SOURCES = {}
_SPECS = {}

# Options `load` may forward to a loader, with the default that means "not set".
_OPTION_DEFAULTS = {
    "data_dir": None,
    "path": None,
    "resolution": None,
    "pad": True,
    "std": None,
    "num_examples": None,
    "seed": 0,
    "download": True,
}


@dataclasses.dataclass(frozen=True)
class _Spec:
  fn: object
  splits: tuple
  options: frozenset
  split_aliases: dict
  tfds_slicing: bool


def register(name, splits, options=(), split_aliases=None, tfds_slicing=False):
  """Decorator that adds a loader to `SOURCES`.

  The loader is called as `fn(split=..., **options)` with only the options it declares, and
  returns a `Source` (before class selection, `num_examples` truncation and checks, which
  `load` applies to every source).

  Args:
    name: Registry name.
    splits: Valid split names.
    options: Names of `load` options the loader accepts (keys of `_OPTION_DEFAULTS`).
    split_aliases: Optional map from extra accepted names to one of `splits`.
    tfds_slicing: Whether TFDS slicing syntax (`"train[:10%]"`) is accepted.

  Returns:
    The decorator.
  """
  unknown = set(options) - set(_OPTION_DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown loader options {sorted(unknown)} for source {name!r}.")

  def decorator(fn):
    if name in SOURCES:
      raise ValueError(f"Data source {name!r} is registered twice.")
    SOURCES[name] = fn
    _SPECS[name] = _Spec(fn, tuple(splits), frozenset(options), dict(split_aliases or {}),
                         tfds_slicing)
    return fn

  return decorator


def alias(new_name, name):
  """Registers `new_name` as another name for the already registered source `name`."""
  SOURCES[new_name] = SOURCES[name]
  _SPECS[new_name] = _SPECS[name]


def _resolve_split(source, spec, split):
  """Returns the split to pass to the loader, or raises a ConfigError naming the valid ones."""
  errors.check(isinstance(split, str), f"dataset.split must be a string, got {split!r}.")
  base, slicing = split, ""
  if spec.tfds_slicing and "[" in split:
    base, slicing = split[:split.index("[")], split[split.index("["):]
  base = spec.split_aliases.get(base, base)
  errors.check(
      base in spec.splits,
      f"Unknown split {split!r} for dataset {source!r}. Choose one of: "
      f"{', '.join(spec.splits + tuple(spec.split_aliases))}"
      + (" (TFDS slicing such as 'train[:10%]' is allowed)." if spec.tfds_slicing else "."))
  return base + slicing


@gin.configurable("dataset")
def load(source=None, split="train", data_dir=None, path=None, resolution=None, classes=None,
         require_labels=False, num_examples=None, pad=True, std=None, seed=0, download=True):
  """Loads a dataset by name. Gin bindings read `dataset.source = 'cifar10'` and so on.

  Args:
    source: A name from `SOURCES` (see `tfadvgan.data.SOURCES`), or a `Source`, which is
      returned unchanged apart from `classes`, `num_examples` and `require_labels`.
    split: Split name, e.g. "train" or "test" (each source lists its own; "test" is accepted as
      "validation" for TFDS sources without a test split).
    data_dir: TFDS data directory (TFDS sources only); None uses the TFDS default.
    path: File or directory for local sources (`idx`, `cifar_python`, `npz`, `folder`).
    resolution: Output side length in pixels (bilinear, antialiased resize) where the source
      allows it; None keeps the source's default (see each loader).
    classes: Optional sequence of class ids to keep; labels are remapped to `0..len(classes)-1`
      in the given order.
    require_labels: Raise a ConfigError when the source has no labels.
    num_examples: Keep only the first `num_examples` examples (synthetic sources: the number of
      points to generate, default 100000).
    pad: 28x28 sources (`mnist`, `fashion_mnist`, `idx`): pad 2 px of -1 on each side to 32x32
      (True) or resize to 32x32 (False). `resolution` then resizes the 32x32 result.
    std: Standard deviation of each mode for synthetic sources (None: the source default).
    seed: Seed for synthetic sources.
    download: Let TFDS download (and prepare) missing data.

  Returns:
    A `Source`.

  Raises:
    ConfigError: unknown source or split, missing files, malformed data, no labels when they
      are required, or an empty result. Options the source does not use only log a warning.
  """
  errors.check(source is not None,
               "No dataset: set dataset.source, e.g. --gin_param \"dataset.source = 'cifar10'\".")
  given = dict(data_dir=data_dir, path=path, resolution=resolution, pad=pad, std=std,
               num_examples=num_examples, seed=seed, download=download)
  if isinstance(source, sources.Source):
    _warn_unused_by_built(source, given)
    result, truncate = source, num_examples is not None
  else:
    result, truncate = _load_registered(source, split, given)
  return _select(result, classes, num_examples if truncate else None, require_labels)


def _unused_options(given, used=frozenset()):
  """The options set to other than their default (`num_examples` aside) that are not `used`."""
  return [k for k, v in given.items()
          if k not in used and k != "num_examples" and v != _OPTION_DEFAULTS[k]]


def _warn_unused_by_built(source, given):
  """The options that an already built Source ignores, in one warning line."""
  unused = _unused_options(given)
  if unused:
    logging.warning("dataset option(s) %s ignored: %r is an already built Source (only "
                    "classes, num_examples and require_labels apply).", ", ".join(unused),
                    source.name)


def _load_registered(name, split, given):
  """Calls the loader registered as `name` with the options it declares.

  Returns:
    `(source, truncate)`: `truncate` says `load` still has to keep the first `num_examples`
    (when they were given and the loader does not take them itself).
  """
  errors.choose("dataset source", name, SOURCES)
  spec = _SPECS[name]
  unused = _unused_options(given, spec.options)
  if unused:  # A warning, not an error: gin files and flags often set them globally.
    logging.warning("Dataset %r does not use option(s) %s; ignoring them (options it uses: "
                    "%s).", name, ", ".join(unused), ", ".join(sorted(spec.options)) or "none")
  split = _resolve_split(name, spec, split)
  given = dict(given, resolution=errors.check_int("dataset.resolution", given["resolution"],
                                                  low=1, allow_none=True))
  result = spec.fn(split=split, **{k: given[k] for k in spec.options})
  return result, given["num_examples"] is not None and "num_examples" not in spec.options


def _select(source, classes, num_examples, require_labels):
  """What `load` applies to every source: class selection, truncation to the first
  `num_examples` (None: all), the labels requirement and the not-empty check."""
  if classes is not None:
    source = select_classes(source, classes)
  if num_examples is not None:
    num_examples = errors.check_int("dataset.num_examples", num_examples, low=1)
    source = truncate_source(source, num_examples)
  errors.check(
      not require_labels or source.num_classes > 0,
      f"Labels are required but dataset {source.name!r} has no labels. Use a labelled source "
      f"or set dataset.require_labels = False.")
  check_not_empty(source)
  return source


def check_not_empty(source):
  """Raises a ConfigError when `source` has no examples (iterates one element if needed)."""
  cardinality = int(source.images.cardinality())
  if cardinality == tf.data.UNKNOWN_CARDINALITY:
    empty = not any(True for _ in source.images.take(1))
  else:
    empty = cardinality == 0
  errors.check(not empty,
               f"Dataset {source.name!r} has no examples; check the path, split and classes.")


def select_classes(source, classes):
  """Keeps the examples whose label is in `classes` and remaps labels to their position.

  Args:
    source: A labelled `Source`.
    classes: Sequence of distinct class ids in `[0, source.num_classes)`.

  Returns:
    A `Source` with `num_classes == len(classes)`.
  """
  errors.check(source.num_classes > 0,
               f"dataset.classes was set but dataset {source.name!r} has no labels; unset it.")
  classes = list(classes)
  errors.check(
      classes and all(isinstance(c, (int, np.integer)) for c in classes)
      and len(set(classes)) == len(classes)
      and all(0 <= c < source.num_classes for c in classes),
      f"dataset.classes must be distinct integers in [0, {source.num_classes}) for dataset "
      f"{source.name!r}, got {classes!r}.")
  table = np.full([source.num_classes], -1, np.int32)
  table[np.asarray(classes)] = np.arange(len(classes), dtype=np.int32)
  table = tf.constant(table)
  inner = source.records

  def records(num_shards, index, seed):
    ds = inner(num_shards, index, seed).filter(lambda r, y: tf.gather(table, y) >= 0)
    return ds.map(lambda r, y: (r, tf.gather(table, y)), num_parallel_calls=AUTOTUNE)

  return source.replace(records=records, num_classes=len(classes), num_examples=None)


def truncate_source(source, num_examples):
  """The first `num_examples` records of `source` (in order), sharded by example."""
  inner = source.records

  def records(num_shards, index, seed):
    del seed
    return sources.shard_examples(inner(1, 0, None).take(num_examples), num_shards, index)

  known = source.num_examples
  return source.replace(
      records=records, file_shards=0,
      num_examples=min(known, num_examples) if known is not None else None,
      max_examples=min(source.max_examples or num_examples, num_examples))
