"""Sample-quality evaluation of a GAN: FID / IS / KID, precision / recall, density / coverage
and per-class FID of generated samples against real data.

* ``evaluate(gan, classifier, reference_source, reference_key_fields, ...)`` draws ``num_samples``
  images from the run's sampler (the EMA generator when the run has one) with
  ``tfadvgan.gans.sampling.generate``, runs them through ``classifier`` and compares them with the
  classifier's activations of real data (cached by ``load_or_compute_reference``).
* ``make_eval_fn(...)`` (gin) returns ``eval_fn(gan, step)`` for ``train.eval_fn``. Training
  evaluates every ``train.eval_every_steps`` steps with one built from the ``make_eval_fn.*``
  bindings (the run's model_dir, the default classifier for the data)::

    train.eval_every_steps = 1000
    make_eval_fn.num_samples = 5000          # optional: any make_eval_fn setting

* ``append_results(model_dir, step, results, ...)`` keeps ``<model_dir>/eval/results.json`` (a
  list of records ``{step, metric, value, classifier, n, checkpoint, reference_split,
  n_reference}``) and TensorBoard scalars ``eval/<metric>`` in ``<model_dir>/eval``.

Metric names carry the classifier: tf-gan's Inception (``Classifier.name == 'inception'``) gives
``fid``, ``is_mean``, ``is_std``, ``kid``, ``kid_std``; any other classifier NAME gives
``fid_NAME``, ``is_NAME_mean``, ``is_NAME_std``, ``kid_NAME``, ``kid_NAME_std``, so numbers from
different feature extractors are never confused. Likewise ``precision`` / ``precision_NAME`` (and
recall, density, coverage: ``manifold.manifold_metrics`` on the FID features and reference) and
``fid_class_mean``, ``fid_class_<c>`` / ``fid_NAME_class_mean``, ``fid_NAME_class_<c>`` (per-class
FID: class c's samples against the reference examples labelled c).

Samples: image ``i`` comes from ``generate(gan, chunk, seed + k * CHUNK_SEED_STRIDE)`` for chunk
``k = i // chunk_size``, so with ``num_samples <= chunk_size`` the samples are exactly
``generate(gan, num_samples, seed)``. For conditional runs ``chunk_size`` is rounded up to a
multiple of the class count, so labels cycle ``i % num_classes`` over all samples.

Reference: the first ``n_reference = min(num_samples, size of the split)`` examples of the real
split, in the source's stored order (not shuffled; sources stored sorted by class, such as a
class-subfolder ``folder`` source, give a class-biased subset when the split is larger than
``num_samples``).
"""
import contextlib
import hashlib
import inspect
import json
import math
import os

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan.errors import check
from tfadvgan.errors import ConfigError
from tfadvgan import io
from tfadvgan.metrics import classifiers as classifiers_lib
from tfadvgan.metrics import manifold
from tfadvgan.metrics import sample_quality

from tfadvgan.gans.sampling import generate

METRICS = ("fid", "is", "kid")  # the default set
# Every metric `evaluate` takes, in result order.
ALL_METRICS = METRICS + ("precision_recall", "density_coverage", "per_class_fid")
_PARTS = {"fid": ["fid"], "is": ["is_mean", "is_std"], "kid": ["kid", "kid_std"],
          "precision_recall": ["precision", "recall"], "density_coverage": ["density", "coverage"],
          "per_class_fid": ["fid_class_mean"]}
RESULTS_DIR = "eval"
RESULTS_FILE = "results.json"
CHUNK_SEED_STRIDE = 1_000_003
DEFAULT_CHUNK_SIZE = 10000
# Options of `tfadvgan.data.load` that decide which real images a split holds (cache key).
_DATA_KEY_OPTIONS = ("source", "path", "data_dir", "resolution", "classes", "num_examples", "pad",
                     "std", "seed")


def default_cache_dir():
  """``$TFADVGAN_CACHE_DIR/reference`` or ``~/.cache/tfadvgan/reference``."""
  return io.cache_dir("reference")


def metric_names(classifier_name, num_classes=0):
  """``{'fid': ..., 'is_mean': ..., 'kid': ..., 'precision': ..., 'fid_class_mean': ...,
  'fid_class_<c>': ...}`` result names (``fid_class_<c>`` for c < num_classes)."""
  n = classifier_name
  if n == classifiers_lib.INCEPTION_NAME:
    names = dict(fid="fid", is_mean="is_mean", is_std="is_std", kid="kid", kid_std="kid_std",
                 fid_class_mean="fid_class_mean")
    names.update({m: m for m in manifold.MANIFOLD_METRICS})
    names.update({f"fid_class_{c}": f"fid_class_{c}" for c in range(num_classes)})
    return names
  names = dict(fid=f"fid_{n}", is_mean=f"is_{n}_mean", is_std=f"is_{n}_std", kid=f"kid_{n}",
               kid_std=f"kid_{n}_std", fid_class_mean=f"fid_{n}_class_mean")
  names.update({m: f"{m}_{n}" for m in manifold.MANIFOLD_METRICS})
  names.update({f"fid_class_{c}": f"fid_{n}_class_{c}" for c in range(num_classes)})
  return names


def result_names(classifier_name, metrics=METRICS, num_classes=0):
  """The result keys ``evaluate`` returns for ``metrics``, in order (``per_class_fid`` needs the
  run's ``num_classes``: the mean, then one per class)."""
  metrics = _check_metrics(metrics)
  check("per_class_fid" not in metrics or num_classes >= 1,
        "per_class_fid needs a class-conditional run (its classes label the samples).")
  names = metric_names(classifier_name, num_classes)
  parts = dict(_PARTS, per_class_fid=["fid_class_mean"]
               + [f"fid_class_{c}" for c in range(num_classes)])
  return [names[p] for m in metrics for p in parts[m]]


def needs_reference(metrics):
  """Whether ``metrics`` compare with real data (all but 'is')."""
  return any(m != "is" for m in _check_metrics(metrics))


def _check_metrics(metrics):
  if isinstance(metrics, str):
    metrics = [m.strip() for m in metrics.split(",") if m.strip()]
  metrics = tuple(metrics)
  check(metrics and all(m in ALL_METRICS for m in metrics),
        f"metrics must be a non-empty subset of {', '.join(ALL_METRICS)}; got {metrics!r}.")
  return tuple(m for m in ALL_METRICS if m in metrics)


def reference_size(source, num_samples):
  """``min(num_samples, number of examples in source)`` (counts up to num_samples if unknown)."""
  cardinality = int(source.images.cardinality())
  if cardinality == tf.data.INFINITE_CARDINALITY:
    return num_samples
  if cardinality >= 0:
    return min(num_samples, cardinality)
  return int(source.images.take(num_samples).reduce(np.int64(0), lambda n, _: n + 1))


def classifier_fingerprint(kind, path):
  """SHA-1 (16 hex) of a classifier file, for cache keys; None for Inception (a fixed network).

  A domain classifier retrained under the same name must not reuse the reference activations of
  the old one, so its file contents are part of the key.
  """
  if kind not in ("domain", "keras_inception_v3") or not path or not io.isfile(path):
    return None
  digest = hashlib.sha1()
  with tf.io.gfile.GFile(os.fspath(path), "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:16]


def dataset_key_fields(source, split):
  """Cache-key fields describing the real data: the gin ``dataset`` options in force.

  Unbound options take ``tfadvgan.data.load``'s defaults, so a key made while training (only the
  explicit bindings) equals one made from the saved operative config (defaults included).
  """
  defaults = {k: p.default for k, p in inspect.signature(data_lib.load).parameters.items()}
  options = {}
  for name in _DATA_KEY_OPTIONS:
    try:
      value = gin.query_parameter(f"dataset.{name}")
    except ValueError:
      value = defaults.get(name)
    if name in ("path", "data_dir") and isinstance(value, str):
      value = io.abspath(os.path.expanduser(value))
    if isinstance(value, tuple):
      value = list(value)
    options[name] = value
  return dict(dataset=source.name, split=split, data=options)


def _sample_features(gan, classifier, num_samples, seed, batch_size, chunk_size):
  """Features, logits and labels (None if unconditional) of ``num_samples`` samples."""
  sampler = gan.sampler()
  if gan.conditional and getattr(sampler, "num_classes", 0):
    classes = int(sampler.num_classes)
    chunk_size = -(-chunk_size // classes) * classes
  features, logits, labels = [], [], []
  for k, start in enumerate(range(0, num_samples, chunk_size)):
    size = min(chunk_size, num_samples - start)
    images, y = generate(gan, size, seed=seed + k * CHUNK_SEED_STRIDE, batch_size=batch_size)
    f, l = classifier.features_and_logits(images)
    features.append(f)
    logits.append(l)
    labels.append(y)
  labels = None if labels[0] is None else np.concatenate(labels)
  return np.concatenate(features), np.concatenate(logits), labels


def _reference_stats(classifier, source, n, key):
  """``ActivationStats`` of the first ``n`` examples: classifier features, and their labels when
  the source has them (one pass over the data)."""
  examples = source.images.take(n)
  if not source.num_classes:
    return sample_quality.ActivationStats(classifier.features(examples), key)
  features, labels = [], []
  for images, y in examples.batch(16 * classifier.batch_size):
    features.append(classifier.features(images.numpy()))
    labels.append(y.numpy())
  return sample_quality.ActivationStats(np.concatenate(features), key,
                                        labels=np.concatenate(labels))


def _reference(classifier, source, fields, n, cache_dir, need_labels):
  """The cached reference ``ActivationStats`` of the first ``n`` real examples."""
  fields = dict(fields)
  check("dataset" in fields and "split" in fields,
        "reference_key_fields needs 'dataset' and 'split'.")
  clash = sorted(set(fields) & {"classifier", "resolution", "n"})
  check(not clash, f"reference_key_fields must not set {clash}; evaluate adds them.")
  check(n >= 2, f"The reference split has {n} example(s); the metrics need at least 2.")
  key = sample_quality.make_reference_key(
      classifier=classifier.name, resolution=list(tuple(source.shape)[:2]), n=int(n), **fields)

  def compute():
    logging.info("Computing %d reference activations (%s).", n, key)
    return _reference_stats(classifier, source, n, key)

  return sample_quality.load_or_compute_reference(cache_dir or default_cache_dir(), key, compute,
                                                  need_labels=need_labels)


def per_class_fid(real_features, real_labels, fake_features, fake_labels, num_classes):
  """``({class: FID}, mean over classes)``: FID between the reals and the fakes of each class.

  Each class needs at least 2 real and 2 generated examples.
  """
  real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
  values = {}
  for c in range(num_classes):
    real, fake = real_features[real_labels == c], fake_features[fake_labels == c]
    check(len(real) >= 2 and len(fake) >= 2,
          f"Per-class FID of class {c} needs at least 2 real and 2 generated examples; got "
          f"{len(real)} real and {len(fake)} generated. Raise --num_samples.")
    values[c] = sample_quality.fid_from_activations(real, fake)
  return values, float(np.mean(list(values.values())))


def _check_per_class(gan, source):
  """The run's class count, checked against the reference data."""
  check(gan.conditional, "per_class_fid needs a class-conditional run (its classes label the "
        "samples); this run is unconditional.")
  classes = int(gan.sampler().num_classes)
  check(source.num_classes == classes, f"per_class_fid: the run has {classes} classes but the "
        f"reference data {source.name!r} has {source.num_classes}.")
  return classes


def _reference_metrics(metrics, names, reference, features, labels, num_classes):
  """The metrics of ``metrics`` that compare samples with ``reference`` (ActivationStats)."""
  results = {}
  if "fid" in metrics:
    results[names["fid"]] = sample_quality.fid_from_activations(reference.activations, features)
  if "kid" in metrics:
    results[names["kid"]], results[names["kid_std"]] = sample_quality.kid_from_activations(
        reference.activations, features)
  wanted = [m for m, on in (("precision", "precision_recall"), ("recall", "precision_recall"),
                            ("density", "density_coverage"), ("coverage", "density_coverage"))
            if on in metrics]
  if wanted:
    values = manifold.manifold_metrics(reference.activations, features, metrics=wanted)
    results.update({names[m]: v for m, v in values.items()})
  if "per_class_fid" in metrics:
    per_class, mean = per_class_fid(reference.activations, reference.labels, features, labels,
                                    num_classes)
    results[names["fid_class_mean"]] = mean
    results.update({names[f"fid_class_{c}"]: v for c, v in per_class.items()})
  return results


def evaluate(gan, classifier, reference_source, reference_key_fields, num_samples=50000,
             cache_dir=None, metrics=METRICS, batch_size=256, seed=0, num_reference=None,
             chunk_size=DEFAULT_CHUNK_SIZE):
  """FID / IS / KID, precision / recall, density / coverage and per-class FID of ``gan``'s
  samples, measured with ``classifier``.

  Args:
    gan: a trained ``GAN``; samples come from ``gan.sampler()`` (EMA G when enabled).
    classifier: a ``tfadvgan.metrics.Classifier`` (``get_classifier``).
    reference_source: ``tfadvgan.data.Source`` of the real split (e.g. ``data.load(split=...)``);
      may be None when only 'is' is asked for.
    reference_key_fields: dict with at least ``dataset`` and ``split`` (plus anything else that
      identifies the real data, e.g. ``dataset_key_fields``); ``classifier`` (its name),
      ``resolution`` and ``n`` are added here to form the reference cache key.
    num_samples: number of generated samples.
    cache_dir: reference activation cache (None: ``default_cache_dir()``).
    metrics: subset of ``ALL_METRICS`` (or a comma-separated string): 'fid', 'is', 'kid',
      'precision_recall', 'density_coverage' (``manifold.manifold_metrics`` on the FID features),
      'per_class_fid' (class-conditional runs: FID of each class's samples against the reference
      examples of that class, and their mean).
    batch_size: generator batch size.
    seed: noise seed (same seed, same samples).
    num_reference: real examples to use; None means ``reference_size(source, num_samples)``.
    chunk_size: samples generated and classified at a time (bounds memory).

  Returns:
    ``{name: float}`` with names from ``result_names(classifier.name, metrics, num_classes)``;
    KID's std is NaN with a single block (tf-gan convention).
  """
  metrics = _check_metrics(metrics)
  check(isinstance(num_samples, int) and num_samples >= 2,
        f"num_samples must be an integer >= 2, got {num_samples!r}.")
  sample_shape = tuple(gan.sampler().output_shape_)
  check(len(sample_shape) == 3, f"Sample-quality metrics need image data; the run generates "
        f"points of shape {sample_shape}.")
  with_reference = needs_reference(metrics)
  check(reference_source is not None or not with_reference,
        "Every metric but 'is' needs a reference_source (the real split).")
  num_classes = 0
  if with_reference:
    shape = tuple(reference_source.shape)
    check(sample_shape == shape,
          f"The run generates images of shape {sample_shape} but the reference dataset "
          f"{reference_source.name!r} has shape {shape}; evaluate against the run's own dataset.")
    if "per_class_fid" in metrics:
      num_classes = _check_per_class(gan, reference_source)
  names = metric_names(classifier.name, num_classes)
  features, logits, labels = _sample_features(gan, classifier, num_samples, seed, batch_size,
                                              chunk_size)
  results = {}
  if with_reference:
    if num_reference is None:
      num_reference = reference_size(reference_source, num_samples)
    reference = _reference(classifier, reference_source, reference_key_fields, num_reference,
                           cache_dir, need_labels="per_class_fid" in metrics)
    results = _reference_metrics(metrics, names, reference, features, labels, num_classes)
  if "is" in metrics:
    results[names["is_mean"]], results[names["is_std"]] = (
        sample_quality.inception_score_from_logits(logits))
  return {k: results[k] for k in result_names(classifier.name, metrics, num_classes)}

# ---------------------------------------------------------------------------------------------
# results.json


def results_path(model_dir):
  return io.join(model_dir, RESULTS_DIR, RESULTS_FILE)


def read_results(model_dir):
  """The records of ``<model_dir>/eval/results.json`` ([] if there is none)."""
  path = results_path(model_dir)
  if not io.exists(path):
    return []
  try:
    records = io.read_json(path)
    check(isinstance(records, list), "not a list")
  except (ValueError, ConfigError) as e:
    raise ConfigError(f"{path} is corrupt ({e}); fix or delete it.") from None
  return records


@contextlib.contextmanager
def _locked(directory):
  """An exclusive lock (flock on ``.results.lock``) so concurrent writers do not lose records.

  Only on local filesystems: object stores (gs://) have no file locks, so there concurrent
  evaluations of one run (e.g. eval --continuous beside a second eval) may drop each other's
  records; run one writer per run directory there.
  """
  io.makedirs(directory)
  local = io.local_path(directory)
  try:
    import fcntl  # pylint: disable=g-import-not-at-top
  except ImportError:  # Not POSIX: no locking.
    fcntl = None
  if fcntl is None or local is None:
    yield
    return
  with open(os.path.join(local, ".results.lock"), "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _json_value(value):
  value = float(value)
  return value if math.isfinite(value) else None


def append_results(model_dir, step, results, classifier_name, n, checkpoint=None, extra=None,
                   summaries=True):
  """Adds ``results`` of ``step`` to ``<model_dir>/eval/results.json`` and TensorBoard.

  Read-modify-write under a file lock, written to a temp file and renamed. A record with the same
  step, metric, classifier, n and ``extra`` fields replaces the older one. Non-finite values are
  stored as ``null``.

  Args:
    model_dir: the run directory.
    step: train step of the evaluated weights.
    results: ``{metric: value}`` from ``evaluate``.
    classifier_name: ``Classifier.name``.
    n: number of generated samples.
    checkpoint: checkpoint basename (e.g. 'ckpt-2'), or None (live weights during training).
    extra: further JSON fields of every record (e.g. reference_split, n_reference).
    summaries: also write scalars ``eval/<metric>`` to ``<model_dir>/eval`` (TensorBoard).

  Returns:
    The path of results.json.
  """
  directory = io.join(model_dir, RESULTS_DIR)
  new = [dict(step=int(step), metric=name, value=_json_value(value), classifier=classifier_name,
              n=int(n), checkpoint=checkpoint, **(extra or {}))
         for name, value in results.items()]

  def identity(record):
    return json.dumps({k: v for k, v in record.items() if k not in ("value", "checkpoint")},
                      sort_keys=True)

  with _locked(directory):
    replaced = {identity(r) for r in new}
    records = [r for r in read_results(model_dir) if identity(r) not in replaced] + new
    io.atomic_write(results_path(model_dir), json.dumps(records, indent=1))
  if summaries:
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default(step=int(step)):
      for name, value in results.items():
        tf.summary.scalar(f"{RESULTS_DIR}/{name}", float(value))
    writer.flush()
    writer.close()
  return results_path(model_dir)


def evaluated_steps(model_dir, classifier_name, n, names, extra=None):
  """Steps whose records already hold every metric in ``names`` for this classifier, n, extra."""
  extra = extra or {}
  seen = {}
  for r in read_results(model_dir):
    if (r.get("classifier") == classifier_name and r.get("n") == n
        and all(r.get(k) == v for k, v in extra.items())):
      seen.setdefault(r.get("step"), set()).add(r.get("metric"))
  return sorted(s for s, m in seen.items() if set(names) <= m)


def set_best_record(model_dir, record):
  """Puts ``record`` (``"best": true``, a metric, its value, step and checkpoint) into
  results.json in place of the earlier best record of the same metric (``training.best``)."""
  directory = io.join(model_dir, RESULTS_DIR)
  with _locked(directory):
    records = [r for r in read_results(model_dir)
               if not (r.get("best") and r.get("metric") == record["metric"])]
    io.atomic_write(results_path(model_dir), json.dumps(records + [record], indent=1))
  return results_path(model_dir)


# ---------------------------------------------------------------------------------------------
# Evaluation during training.


@gin.configurable
def make_eval_fn(model_dir=None, classifier="auto", classifier_path=None, num_samples=10000,
                 reference_split="train", metrics=METRICS, cache_dir=None, batch_size=256, seed=0,
                 write_results=True, data_shape=None):
  """Returns ``eval_fn(gan, step) -> {metric: value}`` for ``train.eval_fn``.

  ``train.eval_every_steps = N`` alone builds one (with these bindings) for the run: it writes to
  the run's own model_dir and, with ``classifier = 'auto'``, measures with the default classifier
  for the data (``classifiers.default_classifier``). The classifier is loaded before training
  starts (``eval_fn.bind``); the real split is loaded and its reference activations computed (or
  read from the cache) at the first evaluation. Each call evaluates the live weights
  (``checkpoint`` is recorded only if ``ckpt-<step>`` exists) and, with ``write_results``,
  appends to ``<model_dir>/eval/results.json``. TensorBoard scalars come from the training loop
  (``eval/<metric>`` in ``<model_dir>/train``), not from here.

  Args:
    model_dir: run directory for results.json; None: the run's own (``train`` binds it).
    classifier, classifier_path: ``get_classifier`` kind and path; ``classifier = 'auto'``: the
      default for the data's shape (the shipped domain CNN for Fashion-MNIST-shaped data,
      Inception otherwise), chosen when the shape is known (``data_shape``, or ``bind``).
    num_samples: generated samples per evaluation (reference: up to as many real ones).
    reference_split: split of the run's dataset (``dataset.*`` bindings) to compare with.
    metrics: subset of ``ALL_METRICS`` (see ``evaluate``).
    cache_dir: reference cache (None: ``default_cache_dir()``).
    batch_size: generator batch size.
    seed: noise seed (the same samples' z at every evaluation).
    write_results: append to results.json.
    data_shape: the data's shape, for ``classifier = 'auto'`` (None: given later by ``bind``).

  Returns:
    ``eval_fn``, with ``eval_fn.bind(model_dir, data_shape)`` (what ``train`` calls at start-up),
    ``eval_fn.classifier`` (None until bound when 'auto') and
    ``eval_fn.result_names(num_classes)``.
  """
  metrics = _check_metrics(metrics)
  state = {"model_dir": model_dir, "classifier": None}

  def load(kind, path):
    fingerprint = classifier_fingerprint(kind, path)
    state.update(classifier=classifiers_lib.get_classifier(kind, path=path),
                 fingerprint=fingerprint)
    eval_fn.classifier = state["classifier"]

  def bind(run_model_dir, shape):
    """Takes the run's model_dir (unless bound) and loads the classifier for ``shape``."""
    if state["model_dir"] is None:
      state["model_dir"] = run_model_dir
    if state["classifier"] is None:
      kind, path = classifier, classifier_path
      if kind == "auto":
        kind, default_path = classifiers_lib.default_classifier(shape)
        path = path or default_path
      where = (f"In-training evaluation cannot load its classifier ({kind}"
               f"{', ' + str(path) if path else ''})")
      check(kind not in ("domain", "keras_inception_v3") or (path and io.exists(path)),
            f"{where}: the file does not exist. Set make_eval_fn.classifier_path (or "
            "make_eval_fn.classifier), or train.eval_every_steps = 0.")
      try:
        load(kind, path)
      except ConfigError as e:
        raise ConfigError(f"{where}: {e} Set make_eval_fn.classifier / "
                          "make_eval_fn.classifier_path, or train.eval_every_steps = 0.") from None

  def eval_fn(gan, step):
    check(state["classifier"] is not None, "make_eval_fn(classifier='auto') needs the data "
          "shape: pass data_shape, or call eval_fn.bind(model_dir, shape) first.")
    check(state["model_dir"] or not write_results,
          "make_eval_fn needs the run directory for results.json: bind make_eval_fn.model_dir "
          "(or set make_eval_fn.write_results = False).")
    _load_reference_split(state, reference_split, num_samples, metrics)
    results = evaluate(gan, state["classifier"], state["source"], state["fields"],
                       num_samples=num_samples, cache_dir=cache_dir, metrics=metrics,
                       batch_size=batch_size, seed=seed, num_reference=state["n_reference"])
    if write_results:
      run_dir = state["model_dir"]
      ckpt_state = tf.train.get_checkpoint_state(io.join(run_dir, "checkpoints"))
      paths = list(ckpt_state.all_model_checkpoint_paths) if ckpt_state else []
      checkpoint = next((io.basename(p) for p in paths if p.endswith(f"ckpt-{step}")), None)
      append_results(run_dir, step, results, state["classifier"].name, num_samples,
                     checkpoint=checkpoint, extra=eval_fn.record_fields(), summaries=False)
    return results

  eval_fn.bind = bind
  eval_fn.classifier = None
  eval_fn.result_names = lambda num_classes=0: result_names(state["classifier"].name, metrics,
                                                            num_classes)
  eval_fn.record_fields = lambda: dict(reference_split=reference_split,
                                       n_reference=state.get("n_reference"))
  eval_fn.num_samples = num_samples
  if classifier != "auto":
    load(classifier, classifier_path)
  elif data_shape is not None:
    bind(model_dir, data_shape)
  return eval_fn


def reference_fields(source, split, fingerprint):
  """The cache-key fields of the real reference: the dataset's (`dataset_key_fields`) and, for a
  classifier read from a file, its content hash."""
  fields = dataset_key_fields(source, split)
  if fingerprint:
    fields["classifier_sha1"] = fingerprint
  return fields


def _load_reference_split(state, reference_split, num_samples, metrics):
  """Loads the real split into ``state`` once (source, cache-key fields, n_reference)."""
  if "source" in state:
    return
  if not needs_reference(metrics):
    state.update(source=None, fields=None, n_reference=None)
    return
  try:
    source = data_lib.load(split=reference_split)
  except ConfigError as e:
    raise ConfigError(f"Reference data ({reference_split!r} split) for make_eval_fn is "
                      f"unavailable: {e}") from None
  fields = reference_fields(source, reference_split, state["fingerprint"])
  state.update(source=source, fields=fields, n_reference=reference_size(source, num_samples))


__all__ = ["evaluate", "per_class_fid", "needs_reference", "make_eval_fn", "append_results",
           "read_results", "evaluated_steps", "set_best_record", "metric_names", "result_names",
           "reference_size", "dataset_key_fields", "reference_fields",
           "classifier_fingerprint", "default_cache_dir", "generate"]
