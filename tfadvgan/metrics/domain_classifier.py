"""A small domain classifier (e.g. for Fashion-MNIST) used as the feature extractor of FID/KID/IS.

Reusable pieces for ``scripts/train_classifier.py``: the architecture (``build_domain_cnn``),
standard and PGD adversarial training (``train_domain_classifier``, Madry et al. 2018), accuracy
under attack (``evaluate_domain_classifier``), and save/load with a JSON sidecar that carries the
classifier's name (``save_domain_classifier`` / ``load_domain_classifier``).

Saved format: ``<path>`` is a Keras ``.keras`` archive of a functional model whose penultimate layer
is named ``'features'`` and whose output is the logits; ``<path>.json`` holds
``{"name", "num_classes", "input_shape", "feature_dim", "format_version", ...extra}``. Both files
are written atomically (``tfadvgan.storage.atomic_save``: temp file in the same directory, then a
rename), on any ``tf.io.gfile`` filesystem: Keras 3 reads and writes ``gs://`` / ``ram://`` paths
through ``tf.io.gfile`` itself (an in-memory zip), so no local copy is made.
"""
import json
import os

import gin
import keras
import numpy as np
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import storage
from tfadvgan import losses as losses_lib
from tfadvgan import rng
from tfadvgan.errors import ConfigError
from tfadvgan.errors import check

FEATURES_LAYER = "features"
LOGITS_LAYER = "logits"
SIDECAR_SUFFIX = ".json"
FORMAT_VERSION = 1


@gin.configurable
def build_domain_cnn(input_shape, num_classes, width=32, feature_dim=128):
  """Conv-ReLU-MaxPool x2, Dense penultimate ``'features'`` (ReLU), Dense ``'logits'``.

  Args:
    input_shape: ``(H, W, C)`` of images in [-1, 1].
    num_classes: number of logits.
    width: filters of the first conv (the second has ``2 * width``).
    feature_dim: width of the penultimate ``'features'`` layer.

  Returns:
    A functional ``keras.Model`` mapping images to logits ``[B, num_classes]``.
  """
  check(len(input_shape) == 3, f"input_shape must be (H, W, C), got {input_shape}.")
  check(num_classes >= 2, f"num_classes must be >= 2, got {num_classes}.")
  inputs = keras.Input(shape=tuple(input_shape), name="images")
  x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1")(inputs)
  x = keras.layers.MaxPooling2D(2, name="pool1")(x)
  x = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="conv2")(x)
  x = keras.layers.MaxPooling2D(2, name="pool2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(feature_dim, activation="relu", name=FEATURES_LAYER)(x)
  logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(x)
  return keras.Model(inputs, logits, name="domain_cnn")


def _split(batch):
  check(isinstance(batch, (tuple, list)) and len(batch) == 2,
        "Classifier datasets must yield (images, labels) batches.")
  return batch


def make_pgd_fn(model, epsilon, pgd_steps, step_size=None, attack_fn=None):
  """Returns ``attack(images, labels, seed) -> adversarial images`` (L-inf PGD on cross-entropy).

  Args:
    model: maps images to logits.
    epsilon: L-inf radius, in the [-1, 1] pixel scale.
    pgd_steps: number of PGD steps.
    step_size: per-step size; None means ``attacks.default_pgd_step_size`` (Madry et al.).
    attack_fn: PGD with the ``tfadvgan.attacks.pgd`` signature
      ``(x, loss_fn, epsilon, num_steps, step_size, random_start, seed, clip)``; None imports it.
  """
  check(epsilon > 0 and pgd_steps >= 1, f"PGD needs epsilon > 0 and pgd_steps >= 1, got "
        f"epsilon={epsilon}, pgd_steps={pgd_steps}.")
  attack_fn = attack_fn or attacks.pgd
  if step_size is None:
    step_size = attacks.default_pgd_step_size(epsilon, pgd_steps)

  def attack(images, labels, seed):
    def loss_fn(x):
      return losses_lib.class_cross_entropy(model(x, training=False), labels)
    x_adv = attack_fn(images, loss_fn, epsilon, pgd_steps, step_size, random_start=True,
                      seed=seed, clip=True)
    return tf.stop_gradient(x_adv)

  return attack


def evaluate_domain_classifier(model, dataset, epsilon=None, pgd_steps=20, step_size=None,
                               attack_fn=None, seed=0):
  """Accuracy of ``model`` on ``dataset`` (batched (images, labels)), clean or under L-inf PGD.

  Args:
    model: maps images to logits.
    dataset: iterable of ``(images [B, H, W, C], labels [B])`` batches.
    epsilon: None for clean accuracy, else the PGD radius.
    pgd_steps: PGD steps for the attack.
    step_size: PGD step size (None: ``attacks.default_pgd_step_size``).
    attack_fn: PGD implementation (None: ``tfadvgan.attacks.pgd``).
    seed: int seed of the random start.

  Returns:
    Accuracy as a Python float.
  """
  attack = None
  if epsilon is not None:
    attack = tf.function(make_pgd_fn(model, epsilon, pgd_steps, step_size, attack_fn))

  @tf.function(reduce_retracing=True)
  def correct(images, labels):
    pred = tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(pred, tf.cast(labels, tf.int32)), tf.int64))

  hits, total = 0, 0
  for step, batch in enumerate(dataset):
    images, labels = _split(batch)
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.convert_to_tensor(labels, tf.int32)
    if attack is not None:
      images = attack(images, labels, tf.constant([seed, step], tf.int32))
    hits += int(correct(images, labels))
    total += int(tf.shape(labels)[0])
  check(total > 0, "The evaluation dataset is empty.")
  return hits / total


@gin.configurable(denylist=["train_ds", "test_ds", "model"])
def train_domain_classifier(train_ds, test_ds, epochs, adversarial=False, epsilon=0.1,
                            pgd_steps=7, step_size=None, learning_rate=1e-3, model=None,
                            num_classes=None, width=32, feature_dim=128, seed=0,
                            attack_fn=None, eval_pgd_steps=20, log_fn=None):
  """Trains a domain classifier, optionally with Madry et al. PGD adversarial training.

  Standard training minimises the mean cross-entropy on clean batches. Adversarial training
  replaces every batch by L-inf PGD examples (random start, ``pgd_steps`` steps of size
  ``step_size`` within ``epsilon``, images clipped to [-1, 1]) computed against the current model,
  and minimises the cross-entropy on those only (Madry et al., 2018). Adam optimiser.

  Args:
    train_ds: finite dataset/iterable of ``(images [B, H, W, C] in [-1, 1], labels [B])`` batches,
      iterated once per epoch (shuffle it yourself).
    test_ds: same format, or None; clean accuracy is measured after every epoch.
    epochs: number of passes over ``train_ds``.
    adversarial: whether to train on PGD examples.
    epsilon: L-inf radius in the [-1, 1] pixel scale (0.1 here is 0.05 = 12.75/255 in [0, 1]
      units).
    pgd_steps: PGD steps during training.
    step_size: PGD step size; None means ``attacks.default_pgd_step_size``.
    learning_rate: Adam learning rate.
    model: a model mapping images to logits; None builds ``build_domain_cnn`` from the first batch.
    num_classes: needed when ``model`` is None.
    width: ``build_domain_cnn`` width.
    feature_dim: ``build_domain_cnn`` feature width.
    seed: int seed for initialisation (via ``keras.utils.set_random_seed`` when building) and the
      PGD random starts.
    attack_fn: PGD implementation with the ``tfadvgan.attacks.pgd`` signature (None imports it).
    eval_pgd_steps: if adversarial and ``test_ds`` is given, the final test accuracy under a PGD
      attack with this many steps is reported as ``test_adv_accuracy``.
    log_fn: optional ``log_fn(epoch, logs_dict)`` called after every epoch.

  Returns:
    ``(model, history)`` where history has per-epoch lists ``loss``, ``accuracy`` (on the inputs
    trained on: adversarial ones when adversarial) and ``test_accuracy``, plus
    ``test_adv_accuracy`` (float) when computed.
  """
  check(epochs >= 1, f"epochs must be >= 1, got {epochs}.")
  if model is None:
    model = _first_batch_model(train_ds, num_classes, width, feature_dim, seed)
  optimizer = keras.optimizers.Adam(learning_rate)
  attack = make_pgd_fn(model, epsilon, pgd_steps, step_size, attack_fn) if adversarial else None
  train_step = _make_train_step(model, optimizer, attack)
  history = {"loss": [], "accuracy": [], "test_accuracy": []}
  step = 0
  for epoch in range(epochs):
    loss, acc, step = _train_epoch(train_step, train_ds, seed, step)
    history["loss"].append(loss)
    history["accuracy"].append(acc)
    if test_ds is not None:
      history["test_accuracy"].append(evaluate_domain_classifier(model, test_ds))
    if log_fn is not None:
      log_fn(epoch, {k: v[-1] for k, v in history.items() if v})
  if adversarial and test_ds is not None and eval_pgd_steps:
    history["test_adv_accuracy"] = evaluate_domain_classifier(
        model, test_ds, epsilon=epsilon, pgd_steps=eval_pgd_steps, attack_fn=attack_fn,
        seed=seed + rng.CLASSIFIER_EVAL_OFFSET)
  return model, history


def _first_batch_model(train_ds, num_classes, width, feature_dim, seed):
  """``build_domain_cnn`` for the shape of the first training batch (initialised from ``seed``)."""
  check(num_classes is not None, "train_domain_classifier needs num_classes to build a model.")
  first = next(iter(train_ds), None)
  check(first is not None, "The training dataset is empty.")
  images, _ = _split(first)
  keras.utils.set_random_seed(seed)
  return build_domain_cnn(tuple(images.shape[1:]), num_classes, width=width,
                          feature_dim=feature_dim)


def _make_train_step(model, optimizer, attack):
  """A compiled ``train_step(images, labels, seed) -> (mean loss, accuracy)``: one Adam step on
  the cross entropy of the batch (of its PGD examples when ``attack`` is given)."""
  @tf.function
  def train_step(images, labels, step_seed):
    images = tf.convert_to_tensor(images, tf.float32)
    if attack is not None:
      images = attack(images, labels, step_seed)
    with tf.GradientTape() as tape:
      logits = model(images, training=True)
      per_example = losses_lib.class_cross_entropy(logits, labels)
      loss = tf.nn.compute_average_loss(per_example)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
    acc = tf.reduce_mean(tf.cast(tf.equal(pred, tf.cast(labels, tf.int32)), tf.float32))
    return tf.reduce_mean(per_example), acc
  return train_step


def _train_epoch(train_step, train_ds, seed, step):
  """One pass over ``train_ds``: (example-weighted mean loss, accuracy, the next step number).
  Step ``i``'s PGD random start uses the stateless seed ``[seed, i]``."""
  losses, accs, sizes = [], [], []
  for batch in train_ds:
    images, labels = _split(batch)
    loss, acc = train_step(images, labels, tf.constant([seed, step], tf.int32))
    losses.append(float(loss))
    accs.append(float(acc))
    sizes.append(int(np.shape(labels)[0]))
    step += 1
  check(sizes, "The training dataset is empty.")
  return (float(np.average(losses, weights=sizes)), float(np.average(accs, weights=sizes)),
          step)


def sidecar_path(path):
  """Returns the metadata path of a saved classifier: ``<path>.json``."""
  return os.fspath(path) + SIDECAR_SUFFIX


def save_domain_classifier(model, path, name, metadata=None):
  """Saves ``model`` to ``path`` (``.keras``) and its name/metadata to ``<path>.json``, atomically.

  Args:
    model: functional Keras model with a layer named ``'features'`` whose output is the logits.
    path: destination, must end in ``.keras``.
    name: the classifier name used to label metrics (e.g. 'fmnist_cnn').
    metadata: optional extra JSON-serialisable fields (e.g. adversarial, epsilon, accuracy).
  """
  path = os.fspath(path)
  check(path.endswith(".keras"), f"Classifier path must end in .keras, got {path!r}.")
  check(isinstance(name, str) and name, "save_domain_classifier needs a non-empty name.")
  try:
    features = model.get_layer(FEATURES_LAYER)
  except ValueError:
    raise ConfigError(f"The classifier has no layer named {FEATURES_LAYER!r}; build it with "
                      f"build_domain_cnn.") from None
  meta = dict(metadata or {})
  meta.update(name=name, num_classes=int(model.output.shape[-1]),
              input_shape=[int(d) for d in model.input.shape[1:]],
              feature_dim=int(features.output.shape[-1]), format_version=FORMAT_VERSION)
  text = json.dumps(meta, indent=2, sort_keys=True)
  storage.atomic_save(path, model.save)
  storage.atomic_write(sidecar_path(path), text)


def load_domain_classifier(path):
  """Loads a classifier saved by ``save_domain_classifier``.

  Returns:
    ``(model, metadata)``; without a sidecar, metadata is ``{"name": <basename without .keras>}``.

  Raises:
    ConfigError: the file is missing or corrupt, or the model lacks a ``'features'`` layer.
  """
  path = os.fspath(path)
  flag = "--classifier=domain --classifier_path=<file.keras from scripts/train_classifier.py>"
  check(storage.isfile(path), f"Domain classifier file {path!r} does not exist; set {flag}.")
  try:
    model = keras.models.load_model(path, compile=False)
  except Exception as e:  # pylint: disable=broad-except  (zip, h5, deserialisation errors)
    raise ConfigError(f"Cannot load domain classifier {path!r} ({type(e).__name__}: {e}); "
                      f"retrain it or set {flag}.") from None
  meta = {"name": os.path.splitext(storage.basename(path))[0]}
  meta.update(storage.read_optional_json(sidecar_path(path), default={}, expect=dict))
  try:
    model.get_layer(FEATURES_LAYER)
  except ValueError:
    raise ConfigError(f"Domain classifier {path!r} has no layer named {FEATURES_LAYER!r}; save a "
                      f"model built by build_domain_cnn.") from None
  return model, meta
