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

Samples: image ``i`` comes from ``generate(gan, chunk, seed + k * rng.EVAL_CHUNK_STRIDE)`` for chunk
``k = i // chunk_size``, so with ``num_samples <= chunk_size`` the samples are exactly
``generate(gan, num_samples, seed)``. For conditional runs ``chunk_size`` is rounded up to a
multiple of the class count, so labels cycle ``i % num_classes`` over all samples.

Reference: the first ``n_reference = min(num_samples, size of the split)`` examples of the real
split, in the source's stored order (not shuffled; sources stored sorted by class, such as a
class-subfolder ``folder`` source, give a class-biased subset when the split is larger than
``num_samples``).

The parts live in their own modules and are re-exported here: the metric and result names
(``metric_names``), the real reference and its cache key (``reference``), and results.json
(``results_file``).
"""
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan.errors import check
from tfadvgan.errors import ConfigError
from tfadvgan import storage
from tfadvgan import rng
from tfadvgan.metrics import classifiers as classifiers_lib
from tfadvgan.metrics import manifold
from tfadvgan.metrics import sample_quality
from tfadvgan.metrics.metric_names import ALL_METRICS
from tfadvgan.metrics.metric_names import check_metrics
from tfadvgan.metrics.metric_names import METRICS
from tfadvgan.metrics.metric_names import metric_names
from tfadvgan.metrics.metric_names import needs_reference
from tfadvgan.metrics.metric_names import result_names
from tfadvgan.metrics.reference import classifier_fingerprint
from tfadvgan.metrics.reference import dataset_key_fields
from tfadvgan.metrics.reference import default_cache_dir
from tfadvgan.metrics.reference import load_reference
from tfadvgan.metrics.reference import reference_fields
from tfadvgan.metrics.reference import reference_size
from tfadvgan.metrics.results_file import append_results
from tfadvgan.metrics.results_file import evaluated_steps
from tfadvgan.metrics.results_file import read_results
from tfadvgan.metrics.results_file import RESULTS_DIR
from tfadvgan.metrics.results_file import RESULTS_FILE
from tfadvgan.metrics.results_file import results_path
from tfadvgan.metrics.results_file import set_best_record

from tfadvgan.gans.sampling import generate

DEFAULT_CHUNK_SIZE = 10000


def _sample_features(gan, classifier, num_samples, seed, batch_size, chunk_size):
  """Features, logits and labels (None if unconditional) of ``num_samples`` samples."""
  sampler = gan.sampler()
  if gan.conditional and getattr(sampler, "num_classes", 0):
    classes = int(sampler.num_classes)
    chunk_size = -(-chunk_size // classes) * classes
  features, logits, labels = [], [], []
  for k, start in enumerate(range(0, num_samples, chunk_size)):
    size = min(chunk_size, num_samples - start)
    images, y = generate(gan, size, seed=seed + k * rng.EVAL_CHUNK_STRIDE, batch_size=batch_size)
    f, l = classifier.features_and_logits(images)
    features.append(f)
    logits.append(l)
    labels.append(y)
  labels = None if labels[0] is None else np.concatenate(labels)
  return np.concatenate(features), np.concatenate(logits), labels


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
  metrics = check_metrics(metrics)
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
    reference = load_reference(classifier, reference_source, reference_key_fields, num_reference,
                           cache_dir, need_labels="per_class_fid" in metrics)
    results = _reference_metrics(metrics, names, reference, features, labels, num_classes)
  if "is" in metrics:
    results[names["is_mean"]], results[names["is_std"]] = (
        sample_quality.inception_score_from_logits(logits))
  return {k: results[k] for k in result_names(classifier.name, metrics, num_classes)}


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
  return _EvalFn(model_dir, classifier, classifier_path, num_samples, reference_split,
                 check_metrics(metrics), cache_dir, batch_size, seed, write_results, data_shape)


class _EvalFn:
  """The callable ``make_eval_fn`` returns (see there)."""

  def __init__(self, model_dir, classifier, classifier_path, num_samples, reference_split,
               metrics, cache_dir, batch_size, seed, write_results, data_shape):
    self.model_dir, self.kind, self.path = model_dir, classifier, classifier_path
    self.num_samples, self.reference_split, self.metrics = num_samples, reference_split, metrics
    self.cache_dir, self.batch_size, self.seed = cache_dir, batch_size, seed
    self.write_results = write_results
    self.classifier = None
    self.reference = None  # {source, fields, n_reference}, loaded at the first evaluation
    if classifier != "auto":
      self._load(classifier, classifier_path)
    elif data_shape is not None:
      self.bind(model_dir, data_shape)

  def _load(self, kind, path):
    self.fingerprint = classifier_fingerprint(kind, path)
    self.classifier = classifiers_lib.get_classifier(kind, path=path)

  def bind(self, run_model_dir, shape):
    """Takes the run's model_dir (unless bound) and loads the classifier for ``shape``."""
    if self.model_dir is None:
      self.model_dir = run_model_dir
    if self.classifier is not None:
      return
    kind, path = self.kind, self.path
    if kind == "auto":
      kind, default_path = classifiers_lib.default_classifier(shape)
      path = path or default_path
    where = (f"In-training evaluation cannot load its classifier ({kind}"
             f"{', ' + str(path) if path else ''})")
    check(kind not in ("domain", "keras_inception_v3") or (path and storage.exists(path)),
          f"{where}: the file does not exist. Set make_eval_fn.classifier_path (or "
          "make_eval_fn.classifier), or train.eval_every_steps = 0.")
    try:
      self._load(kind, path)
    except ConfigError as e:
      raise ConfigError(f"{where}: {e} Set make_eval_fn.classifier / "
                        "make_eval_fn.classifier_path, or train.eval_every_steps = 0.") from None

  def __call__(self, gan, step):
    check(self.classifier is not None, "make_eval_fn(classifier='auto') needs the data "
          "shape: pass data_shape, or call eval_fn.bind(model_dir, shape) first.")
    check(self.model_dir or not self.write_results,
          "make_eval_fn needs the run directory for results.json: bind make_eval_fn.model_dir "
          "(or set make_eval_fn.write_results = False).")
    ref = self._reference()
    results = evaluate(gan, self.classifier, ref["source"], ref["fields"],
                       num_samples=self.num_samples, cache_dir=self.cache_dir,
                       metrics=self.metrics, batch_size=self.batch_size, seed=self.seed,
                       num_reference=ref["n_reference"])
    if self.write_results:
      append_results(self.model_dir, step, results, self.classifier.name, self.num_samples,
                     checkpoint=_kept_checkpoint(self.model_dir, step),
                     extra=self.record_fields(), summaries=False)
    return results

  def _reference(self):
    """The real split (source, cache-key fields, n_reference), loaded once."""
    if self.reference is None:
      self.reference = _load_reference_split(self.reference_split, self.num_samples,
                                             self.metrics, self.fingerprint)
    return self.reference

  def result_names(self, num_classes=0):
    return result_names(self.classifier.name, self.metrics, num_classes)

  def record_fields(self):
    n_reference = self.reference["n_reference"] if self.reference else None
    return dict(reference_split=self.reference_split, n_reference=n_reference)


def _kept_checkpoint(run_dir, step):
  """``ckpt-<step>`` when the run's checkpoint manager keeps it, else None."""
  ckpt_state = tf.train.get_checkpoint_state(storage.join(run_dir, "checkpoints"))
  paths = list(ckpt_state.all_model_checkpoint_paths) if ckpt_state else []
  return next((storage.basename(p) for p in paths if p.endswith(f"ckpt-{step}")), None)


def _load_reference_split(reference_split, num_samples, metrics, fingerprint):
  """The real split's source, cache-key fields and n_reference (all None without a reference)."""
  if not needs_reference(metrics):
    return dict(source=None, fields=None, n_reference=None)
  try:
    source = data_lib.load(split=reference_split)
  except ConfigError as e:
    raise ConfigError(f"Reference data ({reference_split!r} split) for make_eval_fn is "
                      f"unavailable: {e}") from None
  return dict(source=source, fields=reference_fields(source, reference_split, fingerprint),
              n_reference=reference_size(source, num_samples))


__all__ = ["evaluate", "per_class_fid", "needs_reference", "make_eval_fn", "append_results",
           "read_results", "evaluated_steps", "set_best_record", "metric_names", "result_names",
           "reference_size", "dataset_key_fields", "reference_fields", "check_metrics",
           "classifier_fingerprint", "default_cache_dir", "generate", "results_path",
           "ALL_METRICS", "METRICS", "RESULTS_DIR", "RESULTS_FILE"]
