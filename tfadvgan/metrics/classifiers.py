"""Classifiers whose features/logits feed FID, KID and the Inception Score.

A ``Classifier`` takes images in [-1, 1], NHWC, of any size (numpy array, tensor, or a
``tf.data.Dataset`` of images / (images, labels) / {"images": ...}, batched or not) and returns
numpy ``features`` ``[N, d]`` (penultimate / pool activations, for FID and KID) and ``logits``
``[N, C]`` (pre-softmax, for IS). Inputs are cut into batches of ``batch_size`` (the last one is
padded, so each input size is traced once) and run through one ``tf.function``.

Kinds (``get_classifier``):

* ``inception_hub``: tf-gan's Inception (TF-Hub ``tensorflow/tfgan/eval/inception/1``, the graph of
  OpenAI's Inception Score code); input resized to 299x299 bilinear, 1-channel images tiled to 3;
  features = output ``'pool_3'`` (2048), logits = output ``'logits'`` (1008 classes). Name
  ``'inception'``.
* ``inception_local``: the same module from a local SavedModel directory or a hub-format
  ``.tar.gz`` (extracted to a temporary directory), ``tf.saved_model.load``. Name ``'inception'``
  (same network, so hub and local share reference caches).
* ``keras_inception_v3``: ``keras.applications.InceptionV3`` with a local weights file; features =
  ``'avg_pool'`` (2048), logits = pre-softmax top (1000 classes). Name ``'keras_inception_v3'``
  (different weights: never compare its numbers with tf-gan Inception ones).
* ``domain``: a ``.keras`` file from ``save_domain_classifier``; features = layer ``'features'``,
  logits = model output; images resized to the model's input size. Name from its sidecar JSON (or
  the file's basename).

No fallback: if the requested network cannot be loaded, ``ConfigError`` says which flag to set.
"""
import os
import tarfile
import tempfile

import gin
import keras
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.errors import ConfigError
from tfadvgan.errors import check
from tfadvgan.metrics import domain_classifier

# The same constants as tensorflow_gan.python.eval.inception_metrics (tested to agree).
INCEPTION_TFHUB = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_OUTPUT = "logits"
INCEPTION_FINAL_POOL = "pool_3"
INCEPTION_DEFAULT_IMAGE_SIZE = 299

INCEPTION_NAME = "inception"
KERAS_INCEPTION_NAME = "keras_inception_v3"

_RANGE_TOLERANCE = 1e-3

_NO_INCEPTION_HELP = (
    "Without network access, point to a local copy: --classifier=inception_local "
    "--classifier_path=<SavedModel directory or .tar.gz of tfhub.dev/tensorflow/tfgan/eval/"
    "inception/1>, or use a domain classifier: --classifier=domain "
    "--classifier_path=<.keras file from scripts/train_classifier.py>.")


class Classifier:
  """Batched, compiled feature/logit extractor. Subclasses implement ``_preprocess`` and ``_call``.

  Attributes:
    name: label of the metrics computed with it (e.g. 'inception', 'fmnist_cnn') and part of
      reference cache keys.
    batch_size: images per forward pass.
  """

  def __init__(self, name, batch_size):
    check(isinstance(batch_size, int) and batch_size >= 1,
          f"batch_size must be a positive int, got {batch_size!r}.")
    self.name = name
    self.batch_size = batch_size
    self._compiled = tf.function(self._forward, autograph=False)

  def _preprocess(self, images):
    """Maps a float32 ``[B, H, W, C]`` batch in [-1, 1] to the network's input (in graph)."""
    raise NotImplementedError

  def _call(self, inputs):
    """Returns ``(features [B, ...], logits [B, C])`` for preprocessed inputs (in graph)."""
    raise NotImplementedError

  def _check_channels(self, channels):
    """Raises ConfigError if ``channels`` are not supported."""
    check(channels in (1, 3), f"{self.name} takes 1- or 3-channel images, got {channels}.")

  def _forward(self, images):
    features, logits = self._call(self._preprocess(images))
    batch = tf.shape(features)[0]
    width = int(np.prod(features.shape[1:]))
    return (tf.cast(tf.reshape(features, [batch, width]), tf.float32),
            tf.cast(logits, tf.float32))

  def _batches(self, images):
    """Yields ``(numpy batch, padded size)`` pairs of at most ``batch_size`` images."""
    if isinstance(images, tf.data.Dataset):
      spec = images.element_spec
      if isinstance(spec, (tuple, list)):
        images = images.map(lambda *e: e[0])
      elif isinstance(spec, dict):
        field = next((k for k in ("images", "image") if k in spec), None)
        check(field is not None, f"Dataset dict elements need an 'images' or 'image' field, got "
              f"{sorted(spec)}.")
        images = images.map(lambda e: e[field])
      if images.element_spec.shape.rank == 3:
        images = images.batch(self.batch_size)
      for batch in images:
        batch = np.asarray(batch)
        for start in range(0, len(batch), self.batch_size):
          yield batch[start:start + self.batch_size], self.batch_size
      return
    if isinstance(images, tf.Tensor):
      images = images.numpy()
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[None]
    size = min(self.batch_size, max(len(images), 1))
    for start in range(0, len(images), size):
      yield images[start:start + size], size

  def features_and_logits(self, images):
    """Returns ``(features [N, d], logits [N, C])`` float32 numpy arrays.

    Args:
      images: ``[N, H, W, C]`` (or one ``[H, W, C]`` image) in [-1, 1], as numpy, tensor or
        ``tf.data.Dataset`` (see the module docstring).
    """
    features, logits = [], []
    for batch, size in self._batches(images):
      check(batch.ndim == 4, f"{self.name} takes NHWC images, got a batch of shape {batch.shape}.")
      self._check_channels(batch.shape[-1])
      batch = batch.astype(np.float32, copy=False)
      if batch.size:
        lo, hi = float(batch.min()), float(batch.max())
        check(lo >= -1 - _RANGE_TOLERANCE and hi <= 1 + _RANGE_TOLERANCE,
              f"{self.name} takes images in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
              f"rescale them (e.g. x / 127.5 - 1 for uint8).")
      n = len(batch)
      if n < size:  # Pad so that every call has the same static shape.
        batch = np.concatenate([batch, np.zeros((size - n,) + batch.shape[1:], np.float32)])
      f, l = self._compiled(tf.constant(batch))
      features.append(f.numpy()[:n])
      logits.append(l.numpy()[:n])
    check(features, f"{self.name} got no images.")
    return np.concatenate(features), np.concatenate(logits)

  def features(self, images):
    """Penultimate / pool features ``[N, d]`` (float32 numpy) of images in [-1, 1]."""
    return self.features_and_logits(images)[0]

  def logits(self, images):
    """Pre-softmax logits ``[N, C]`` (float32 numpy) of images in [-1, 1]."""
    return self.features_and_logits(images)[1]

  def __repr__(self):
    return f"{type(self).__name__}(name={self.name!r}, batch_size={self.batch_size})"


def _to_inception_input(images, size=INCEPTION_DEFAULT_IMAGE_SIZE):
  """Tiles 1-channel images to 3 and resizes bilinearly to ``size`` x ``size``; stays in [-1, 1]."""
  if images.shape[-1] == 1:
    images = tf.tile(images, [1, 1, 1, 3])
  if tuple(images.shape[1:3]) != (size, size):
    images = tf.image.resize(images, [size, size], method="bilinear")
  return images


class SavedModelInception(Classifier):
  """tf-gan's Inception loaded as a SavedModel (from TF-Hub or a local path)."""

  def __init__(self, module, batch_size, name=INCEPTION_NAME, source=""):
    self._module = module  # Keeps the variables alive.
    self._source = source
    if callable(module):
      self._fn = module
    else:
      signatures = getattr(module, "signatures", {})
      sig = signatures.get("default") or signatures.get("serving_default")
      check(sig is not None, f"The Inception SavedModel {source} is neither callable nor has a "
            f"'default' signature; it is not tfhub.dev/tensorflow/tfgan/eval/inception/1.")
      inputs = list(sig.structured_input_signature[1])
      check(len(inputs) == 1, f"The Inception SavedModel {source} signature takes {inputs}, "
            f"expected a single image input.")
      self._fn = lambda x: sig(**{inputs[0]: x})
    super().__init__(name, batch_size)

  def _preprocess(self, images):
    return _to_inception_input(images)

  def _call(self, inputs):
    outputs = self._fn(inputs)
    keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
    check(isinstance(outputs, dict) and INCEPTION_FINAL_POOL in outputs and
          INCEPTION_OUTPUT in outputs,
          f"The Inception SavedModel {self._source} returns {keys}; expected a dict with "
          f"{INCEPTION_FINAL_POOL!r} and {INCEPTION_OUTPUT!r} (tf-gan's Inception module).")
    return outputs[INCEPTION_FINAL_POOL], outputs[INCEPTION_OUTPUT]


class KerasInceptionV3(Classifier):
  """``keras.applications.InceptionV3`` with local weights: 'avg_pool' features, top logits."""

  def __init__(self, model, batch_size, name=KERAS_INCEPTION_NAME):
    self._model = keras.Model(model.input, [model.get_layer("avg_pool").output, model.output])
    super().__init__(name, batch_size)

  def _preprocess(self, images):
    # keras' inception_v3.preprocess_input maps [0, 255] to [-1, 1]: our inputs already are.
    return _to_inception_input(images)

  def _call(self, inputs):
    features, logits = self._model(inputs, training=False)
    return features, logits


class DomainClassifier(Classifier):
  """A classifier saved by ``domain_classifier.save_domain_classifier``."""

  def __init__(self, model, batch_size, name, metadata=None):
    self.metadata = dict(metadata or {})
    self._model = keras.Model(
        model.input, [model.get_layer(domain_classifier.FEATURES_LAYER).output, model.output])
    self._input_shape = tuple(int(d) for d in model.input.shape[1:])
    super().__init__(name, batch_size)

  def _check_channels(self, channels):
    want = self._input_shape[-1]
    check(channels == want or (channels == 1 and want == 3),
          f"Domain classifier {self.name!r} takes {want}-channel images, got {channels}.")

  def _preprocess(self, images):
    height, width, channels = self._input_shape
    if images.shape[-1] == 1 and channels == 3:
      images = tf.tile(images, [1, 1, 1, 3])
    if tuple(images.shape[1:3]) != (height, width):
      images = tf.image.resize(images, [height, width], method="bilinear")
    return images

  def _call(self, inputs):
    features, logits = self._model(inputs, training=False)
    return features, logits


def _find_saved_model_dir(root):
  """Returns the shallowest directory under ``root`` holding a saved_model.pb(txt), or None."""
  found = []
  for directory, _, files in storage.walk(root):
    if "saved_model.pb" in files or "saved_model.pbtxt" in files:
      found.append(directory)
  return min(found, key=lambda d: d.count(os.sep)) if found else None


def _load_saved_model_dir(directory):
  # TF1 Hub modules (with tfhub_module.pb) use the empty tag set, as tensorflow_hub.load does.
  tags = [] if storage.exists(storage.join(directory, "tfhub_module.pb")) else None
  return tf.saved_model.load(directory, tags=tags)


def load_inception_local(path, batch_size=64):
  """Loads tf-gan's Inception from a SavedModel directory or a hub-format .tar.gz."""
  flag = "Set --classifier=inception_local --classifier_path=<SavedModel dir or .tar.gz>."
  check(path, f"inception_local needs a path. {flag} {_NO_INCEPTION_HELP}")
  path = os.fspath(path)
  check(storage.exists(path), f"Inception path {path!r} does not exist. {_NO_INCEPTION_HELP}")
  try:
    if storage.isdir(path):
      directory = _find_saved_model_dir(path)
      check(directory is not None,
            f"{path!r} holds no saved_model.pb. {_NO_INCEPTION_HELP}")
      module = _load_saved_model_dir(directory)
    else:
      # Unpacked into a local temp directory (removed after loading); from gs:// the archive
      # itself is first copied there too (tarfile reads local files).
      with tempfile.TemporaryDirectory(prefix="tfadvgan_inception_") as tmp, \
          storage.local_copy(path) as archive_path:
        check(tarfile.is_tarfile(archive_path), f"Inception path {path!r} is neither a "
              f"SavedModel directory nor a .tar.gz archive. {_NO_INCEPTION_HELP}")
        with tarfile.open(archive_path) as archive:
          archive.extractall(tmp, filter="data")
        directory = _find_saved_model_dir(tmp)
        check(directory is not None,
              f"Archive {path!r} holds no saved_model.pb. {_NO_INCEPTION_HELP}")
        module = _load_saved_model_dir(directory)  # Variables are restored eagerly.
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (corrupt archive / SavedModel)
    raise ConfigError(f"Cannot load the Inception SavedModel at {path!r} ({type(e).__name__}: "
                      f"{e}). {_NO_INCEPTION_HELP}") from None
  return SavedModelInception(module, batch_size, source=path)


def load_inception_hub(hub_handle=INCEPTION_TFHUB, batch_size=64):
  """Loads tf-gan's Inception with ``tensorflow_hub.load`` (downloads unless cached)."""
  try:
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    module = hub.load(hub_handle)
  except Exception as e:  # pylint: disable=broad-except  (network, cache, format errors)
    raise ConfigError(f"Could not load the Inception network from TF-Hub {hub_handle!r} "
                      f"({type(e).__name__}: {e}). {_NO_INCEPTION_HELP}") from None
  return SavedModelInception(module, batch_size, source=hub_handle)


def load_keras_inception_v3(path, batch_size=64):
  """Builds ``keras.applications.InceptionV3`` with a local weights file (.h5 / .weights.h5)."""
  flag = ("Set --classifier=keras_inception_v3 --classifier_path=<InceptionV3 weights .h5 with "
          "the top>.")
  check(path and storage.isfile(path),
        f"Keras InceptionV3 weights file {path!r} does not exist. {flag} {_NO_INCEPTION_HELP}")
  try:
    with storage.local_copy(path) as local:  # h5py opens local files only
      model = keras.applications.InceptionV3(include_top=True, weights=local,
                                             classifier_activation=None)
  except Exception as e:  # pylint: disable=broad-except  (corrupt / mismatched weights)
    raise ConfigError(f"Cannot load Keras InceptionV3 weights {path!r} ({type(e).__name__}: "
                      f"{e}). {flag}") from None
  return KerasInceptionV3(model, batch_size)


def load_domain(path, batch_size=64):
  """Loads a ``.keras`` domain classifier saved by ``save_domain_classifier``."""
  check(path, "The domain classifier needs --classifier=domain --classifier_path=<file.keras from "
        "scripts/train_classifier.py>.")
  model, metadata = domain_classifier.load_domain_classifier(path)
  return DomainClassifier(model, batch_size, name=str(metadata["name"]), metadata=metadata)


CLASSIFIER_KINDS = ("inception_hub", "inception_local", "keras_inception_v3", "domain")


@gin.configurable
def get_classifier(kind="inception_hub", path=None, hub_handle=INCEPTION_TFHUB, batch_size=64):
  """Returns the ``Classifier`` of the given kind.

  Args:
    kind: one of ``CLASSIFIER_KINDS`` (flag ``--classifier``).
    path: file or directory for 'inception_local', 'keras_inception_v3' and 'domain' (flag
      ``--classifier_path``); ignored by 'inception_hub'.
    hub_handle: TF-Hub handle (URL or local module directory) for 'inception_hub'.
    batch_size: images per forward pass.

  Raises:
    ConfigError: unknown kind, or the network cannot be loaded (the message names the flags).
  """
  loaders = {
      "inception_hub": lambda: load_inception_hub(hub_handle, batch_size),
      "inception_local": lambda: load_inception_local(path, batch_size),
      "keras_inception_v3": lambda: load_keras_inception_v3(path, batch_size),
      "domain": lambda: load_domain(path, batch_size),
  }
  check(isinstance(kind, str), f"kind must be a string, got {kind!r}.")
  return errors.choose("classifier", kind, loaders)()


# The domain CNN shipped in the repository's classifiers/ (scripts/train_classifier.py, on
# Fashion-MNIST); its FID is named fid_fmnist_cnn.
SHIPPED_DOMAIN_CLASSIFIER = os.path.join("classifiers", "fmnist_cnn.keras")
# Fashion-MNIST-shaped data: 28x28 grayscale, or padded to 32x32 (the idx source's default).
FMNIST_SHAPES = ((28, 28, 1), (32, 32, 1))


def shipped_classifier_path():
  """Absolute path of classifiers/fmnist_cnn.keras in the checkout tfadvgan runs from (it may be
  absent from an installed copy: then loading it gives the usual missing-file error)."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return os.path.join(root, SHIPPED_DOMAIN_CLASSIFIER)


def default_classifier(shape):
  """``(kind, path)`` of the default classifier for data of ``shape``: the shipped domain CNN
  for Fashion-MNIST-shaped data (``FMNIST_SHAPES``), tf-gan's Inception from TF-Hub otherwise."""
  if tuple(shape) in FMNIST_SHAPES:
    return "domain", shipped_classifier_path()
  return "inception_hub", None
