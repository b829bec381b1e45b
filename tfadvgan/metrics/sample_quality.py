"""Sample-quality metrics (FID, Inception Score, KID) and cached reference activations.

The math is tf-gan's (``tensorflow_gan.python.eval``, loaded by ``tfgan_eval.load_tfgan_eval``):
``frechet_classifier_distance_from_activations``, ``classifier_score_from_logits`` and
``kernel_classifier_distance_and_std_from_activations``. This module only converts inputs to
float64 tensors, validates shapes, splits logits for the Inception Score, and returns Python floats.

Reference activations (real data through a classifier) are cached in ``.npz`` files, see
``ActivationStats`` and ``load_or_compute_reference``.
"""
import hashlib
import io
import json
import re

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import storage
from tfadvgan.errors import ConfigError
from tfadvgan.errors import check
from tfadvgan.metrics.tfgan_eval import load_tfgan_eval


def _as_matrix(x, what):
  """Converts numpy / tensor input to a float64 ``[N, d]`` tensor."""
  x = tf.convert_to_tensor(np.asarray(x) if not isinstance(x, tf.Tensor) else x)
  check(x.shape.rank == 2, f"{what} must be a 2-D [N, d] array, got shape {x.shape}.")
  check(x.dtype.is_floating or x.dtype.is_integer,
        f"{what} must be numeric, got dtype {x.dtype.name}.")
  return tf.cast(x, tf.float64)


def fid_from_activations(activations1, activations2):
  """Frechet distance between two sets of classifier activations (FID with Inception pool_3).

  Uses tf-gan's ``frechet_classifier_distance_from_activations`` in float64: unbiased sample
  covariances (N - 1), trace of the matrix square root via a symmetric eigen-decomposition.

  Args:
    activations1: ``[N1, d]`` array or tensor (e.g. real images), N1 >= 2.
    activations2: ``[N2, d]`` array or tensor (e.g. generated images), N2 >= 2.

  Returns:
    The FID as a Python float.
  """
  a = _as_matrix(activations1, "activations1")
  b = _as_matrix(activations2, "activations2")
  check(a.shape[1] == b.shape[1],
        f"FID needs activations of the same width, got {a.shape[1]} and {b.shape[1]}.")
  check(a.shape[0] >= 2 and b.shape[0] >= 2,
        f"FID needs at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}.")
  tfgan_eval = load_tfgan_eval()
  return float(tfgan_eval.frechet_classifier_distance_from_activations(a, b))


@gin.configurable
def inception_score_from_logits(logits, num_splits=10):
  """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` as mean and std over splits.

  Split convention (OpenAI improved-gan, used by most papers): the N rows are taken in order and
  cut into ``num_splits`` consecutive chunks of ``N // num_splits`` rows; the last
  ``N % num_splits`` rows are dropped. Each chunk's score is tf-gan's
  ``classifier_score_from_logits`` (float64, with that chunk's own marginal p(y)); the result is
  the mean and the population standard deviation (ddof=0) of the chunk scores.

  Args:
    logits: ``[N, C]`` pre-softmax classifier outputs (Inception 'logits' has C = 1008).
    num_splits: number of chunks, 1 <= num_splits <= N.

  Returns:
    ``(mean, std)`` Python floats (std is 0.0 when num_splits == 1).
  """
  x = _as_matrix(logits, "logits")
  n = int(x.shape[0])
  check(isinstance(num_splits, int) and num_splits >= 1,
        f"num_splits must be a positive int, got {num_splits!r}.")
  check(n >= num_splits,
        f"Inception Score needs at least num_splits={num_splits} logits rows, got {n}.")
  tfgan_eval = load_tfgan_eval()
  size = n // num_splits
  scores = np.array([
      float(tfgan_eval.classifier_score_from_logits(x[k * size:(k + 1) * size]))
      for k in range(num_splits)
  ])
  return float(np.mean(scores)), float(np.std(scores))


@gin.configurable
def kid_from_activations(activations1, activations2, max_block_size=1024):
  """Kernel Inception Distance (unbiased MMD^2, kernel ``(x.y / d + 1)^3``), with its std error.

  tf-gan's block estimator: both sets are cut, in order, into ``ceil(max(N1, N2) /
  max_block_size)`` blocks; the value is the mean of per-block unbiased MMD^2 estimates and the
  std is the standard error over blocks. With a single block the std is NaN (tf-gan convention).
  Inputs should be in random order.

  Args:
    activations1: ``[N1, d]`` array or tensor, N1 >= 2.
    activations2: ``[N2, d]`` array or tensor, N2 >= 2.
    max_block_size: largest block; smaller gives a better std estimate but a noisier value.

  Returns:
    ``(kid, std)`` Python floats, computed in float64.
  """
  a = _as_matrix(activations1, "activations1")
  b = _as_matrix(activations2, "activations2")
  check(a.shape[1] == b.shape[1],
        f"KID needs activations of the same width, got {a.shape[1]} and {b.shape[1]}.")
  n_blocks = -(-max(a.shape[0], b.shape[0]) // max_block_size)
  check(min(a.shape[0], b.shape[0]) >= 2 * n_blocks,
        f"KID needs at least 2 samples per block in each set: got {a.shape[0]} and "
        f"{b.shape[0]} samples for {n_blocks} block(s) (max_block_size={max_block_size}).")
  tfgan_eval = load_tfgan_eval()
  mean, std = tfgan_eval.kernel_classifier_distance_and_std_from_activations(
      a, b, max_block_size=max_block_size, dtype=tf.float64)
  return float(mean), float(std)


# ---------------------------------------------------------------------------------------------
# Reference activations cache.

REFERENCE_KEY_FIELDS = ("dataset", "split", "classifier", "resolution", "n")
CACHE_FORMAT_VERSION = 1


def make_reference_key(dataset, split, classifier, resolution, n, **extra):
  """Returns the cache key dict for reference activations.

  Args:
    dataset: data source name, e.g. 'fashion_mnist'.
    split: e.g. 'train' or 'test'.
    classifier: ``Classifier.name``, e.g. 'inception' or 'fmnist_cnn'.
    resolution: image size fed to the classifier (int or [H, W]) before its own resizing.
    n: number of reference examples.
    **extra: any further JSON-serialisable fields that must match (e.g. classifier_path, seed).
  """
  key = dict(dataset=dataset, split=split, classifier=classifier, resolution=resolution, n=n)
  key.update(extra)
  return _normalize_key(key)


def _normalize_key(key):
  check(isinstance(key, dict), f"A reference cache key must be a dict, got {type(key).__name__}.")
  missing = [f for f in REFERENCE_KEY_FIELDS if f not in key]
  check(not missing, f"The reference cache key lacks {', '.join(missing)}; it needs "
        f"{', '.join(REFERENCE_KEY_FIELDS)} (use make_reference_key).")
  try:
    return json.loads(json.dumps(key, sort_keys=True))  # tuples -> lists, numpy ints rejected.
  except TypeError as e:
    raise ConfigError(f"The reference cache key must be JSON-serialisable: {e}.") from None


class ActivationStats:
  """Reference activations with their cache key.

  The file stores the activations themselves (``[n, d]`` float32, needed by tf-gan's FID and by
  KID) and, for inspection and for tools that take Gaussian statistics, ``mu`` ``[d]`` and
  ``sigma`` ``[d, d]`` (float64, unbiased covariance), plus the key as a JSON string and a format
  version. ``np.load`` runs with ``allow_pickle=False``.

  Labelled data also stores the class of each row (``labels``, for per-class FID); files without
  them load with ``labels = None``.

  Attributes:
    activations: ``[n, d]`` float32 numpy array.
    key: the cache key dict (JSON-normalised).
    labels: ``[n]`` int32 numpy array, or None.
  """

  def __init__(self, activations, key, labels=None):
    activations = np.asarray(activations, dtype=np.float32)
    check(activations.ndim == 2 and activations.shape[0] >= 2,
          f"Reference activations must be [n >= 2, d], got shape {activations.shape}.")
    if labels is not None:
      labels = np.asarray(labels, dtype=np.int32)
      check(labels.shape == activations.shape[:1],
            f"Reference labels must be [n] = [{activations.shape[0]}], got {labels.shape}.")
    self.activations = activations
    self.labels = labels
    self.key = _normalize_key(key)
    self._mu = None
    self._sigma = None

  @property
  def mu(self):
    """Mean activation ``[d]``, float64."""
    if self._mu is None:
      self._mu = self.activations.astype(np.float64).mean(axis=0)
    return self._mu

  @property
  def sigma(self):
    """Unbiased covariance ``[d, d]``, float64."""
    if self._sigma is None:
      self._sigma = np.cov(self.activations.astype(np.float64), rowvar=False, ddof=1)
    return self._sigma

  def save(self, path):
    """Writes the ``.npz`` atomically (``tfadvgan.storage.save_npz``), on any tf.io.gfile path."""
    labels = {} if self.labels is None else {"labels": self.labels}
    storage.save_npz(path, activations=self.activations, mu=self.mu, sigma=self.sigma,
                key=np.array(json.dumps(self.key, sort_keys=True)),
                format_version=np.array(CACHE_FORMAT_VERSION), **labels)

  @classmethod
  def load(cls, path):
    """Reads a file written by ``save``.

    Raises:
      ConfigError: the file is missing, unreadable, corrupt or of another format version.
    """
    try:
      with np.load(io.BytesIO(storage.read(path, binary=True)), allow_pickle=False) as data:
        version = int(data["format_version"])
        if version != CACHE_FORMAT_VERSION:
          raise ValueError(f"format version {version}, expected {CACHE_FORMAT_VERSION}")
        key = json.loads(str(data["key"]))
        stats = cls(data["activations"], key,
                    labels=data["labels"] if "labels" in data.files else None)
        mu, sigma = data["mu"], data["sigma"]
    except ConfigError as e:
      raise ConfigError(f"Reference file {path} is corrupt ({e}); delete it.") from None
    except Exception as e:  # pylint: disable=broad-except  (zip, npy, json, key errors)
      raise ConfigError(f"Cannot read reference file {path} ({type(e).__name__}: {e}); delete "
                        f"it to recompute.") from None
    d = stats.activations.shape[1]
    if mu.shape != (d,) or sigma.shape != (d, d) or not np.all(np.isfinite(stats.activations)):
      raise ConfigError(f"Reference file {path} is corrupt (inconsistent shapes or non-finite "
                        f"values); delete it to recompute.")
    stats._mu, stats._sigma = mu, sigma  # pylint: disable=protected-access
    return stats


def reference_path(cache_dir, key):
  """Returns the cache file path for ``key``: a readable slug plus a hash of the whole key."""
  key = _normalize_key(key)
  digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
  slug = "-".join(str(key[f]) for f in ("dataset", "split", "classifier"))
  slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", slug)
  return storage.join(cache_dir, f"reference_{slug}_{digest}.npz")


def load_or_compute_reference(cache_dir, key, compute_fn, need_labels=False):
  """Returns cached reference activations for ``key``, computing and caching them if needed.

  The file (``reference_path(cache_dir, key)``) is reused only if it loads and its stored key
  equals ``key``; a corrupt file or a key mismatch is logged and the activations are recomputed
  and rewritten atomically.

  Args:
    cache_dir: directory of cache files (created if missing).
    key: dict with at least ``REFERENCE_KEY_FIELDS`` (see ``make_reference_key``).
    compute_fn: zero-argument callable returning ``[n, d]`` activations (array or tensor) or an
      ``ActivationStats`` (which may carry labels).
    need_labels: a cached file without labels is recomputed (``compute_fn`` must give them).

  Returns:
    An ``ActivationStats``.
  """
  key = _normalize_key(key)
  path = reference_path(cache_dir, key)
  if storage.exists(path):
    try:
      stats = ActivationStats.load(path)
      if stats.key == key and (stats.labels is not None or not need_labels):
        return stats
      if stats.key == key:
        logging.info("Reference cache %s has no labels; recomputing with them.", path)
      else:
        logging.warning("Reference cache %s has key %s, expected %s; recomputing.", path,
                        stats.key, key)
    except ConfigError as e:
      logging.warning("%s Recomputing.", e)
  result = compute_fn()
  if isinstance(result, ActivationStats):
    stats = ActivationStats(result.activations, key, labels=result.labels)
  else:
    stats = ActivationStats(np.asarray(result), key)
  check(stats.labels is not None or not need_labels,
        "compute_fn returned reference activations without the labels that were asked for.")
  if isinstance(key["n"], int):
    check(stats.activations.shape[0] == key["n"],
          f"compute_fn returned {stats.activations.shape[0]} reference activations but the cache "
          f"key says n={key['n']}; make them agree.")
  check(np.all(np.isfinite(stats.activations)), "compute_fn returned non-finite activations.")
  stats.save(path)
  return stats
