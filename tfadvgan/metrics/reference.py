"""The real reference of the sample-quality metrics: how many examples it takes, the fields of its
cache key (the data options, the classifier file's hash), and its activations, read from the cache
(``sample_quality.load_or_compute_reference``) or computed.

Reference: the first ``n_reference = min(num_samples, size of the split)`` examples of the real
split, in the source's stored order (not shuffled).
"""
import hashlib
import inspect
import os

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan.errors import check
from tfadvgan import storage
from tfadvgan.metrics import sample_quality

# Options of `tfadvgan.data.load` that decide which real images a split holds (cache key).
_DATA_KEY_OPTIONS = ("source", "path", "data_dir", "resolution", "classes", "num_examples", "pad",
                     "std", "seed")


def default_cache_dir():
  """``$TFADVGAN_CACHE_DIR/reference`` or ``~/.cache/tfadvgan/reference``."""
  return storage.cache_dir("reference")


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
  if kind not in ("domain", "keras_inception_v3") or not path or not storage.isfile(path):
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
      value = storage.abspath(os.path.expanduser(value))
    if isinstance(value, tuple):
      value = list(value)
    options[name] = value
  return dict(dataset=source.name, split=split, data=options)


def reference_fields(source, split, fingerprint):
  """The cache-key fields of the real reference: the dataset's (`dataset_key_fields`) and, for a
  classifier read from a file, its content hash."""
  fields = dataset_key_fields(source, split)
  if fingerprint:
    fields["classifier_sha1"] = fingerprint
  return fields


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


def load_reference(classifier, source, fields, n, cache_dir, need_labels):
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
