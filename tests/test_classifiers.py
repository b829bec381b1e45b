"""Classifiers: factory errors, Inception stand-ins, Keras InceptionV3, the domain classifier."""
import json
import os
import tarfile

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan.errors import ConfigError
from tfadvgan.metrics import classifiers
from tfadvgan.metrics import domain_classifier as dc

NUM_POOL, NUM_LOGITS = 2048, 1008


# ------------------------------------------------------------------------------------------------
# A stand-in for tfhub.dev/tensorflow/tfgan/eval/inception/1: same input and output keys/shapes.
# pool_3 records what the network received: [H, W, C, min, max, mean_r, mean_g, mean_b, 0, ...].

class _StandIn(tf.Module):

  def __init__(self):
    super().__init__()
    self.w = tf.Variable(tf.random.stateless_normal([3, NUM_LOGITS], [1, 2]))

  def run(self, images):
    shape = tf.cast(tf.shape(images)[1:4], tf.float32)
    n = tf.shape(images)[0]
    stats = tf.concat([
        tf.tile(shape[None], [n, 1]),
        tf.reduce_min(images, [1, 2, 3])[:, None],
        tf.reduce_max(images, [1, 2, 3])[:, None],
        tf.reduce_mean(images, [1, 2]),
    ], axis=1)
    pool = tf.pad(stats, [[0, 0], [0, NUM_POOL - 8]])
    return {"pool_3": tf.reshape(pool, [-1, 1, 1, NUM_POOL]),
            "logits": tf.reduce_mean(images, [1, 2]) @ self.w}


_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
  """A callable SavedModel (like a TF2 hub module)."""
  module = _StandIn()
  module.__call__ = tf.function(module.run, input_signature=[_SPEC])
  path = str(tmp_path_factory.mktemp("standin") / "inception")
  tf.saved_model.save(module, path)
  return path


def _expected_stats(images):
  x = tf.constant(images, tf.float32)
  if x.shape[-1] == 1:
    x = tf.tile(x, [1, 1, 1, 3])
  x = tf.image.resize(x, [299, 299], method="bilinear").numpy()
  return np.stack([x.min((1, 2, 3)), x.max((1, 2, 3))], 1), x.mean((1, 2))


def _images(n, size=28, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(-1, 1, size=(n, size, size, channels)).astype(np.float32)


def test_inception_local_resizes_tiles_and_batches(standin_dir):
  clf = classifiers.get_classifier("inception_local", path=standin_dir, batch_size=3)
  assert clf.name == "inception"
  images = _images(7)
  features, logits = clf.features_and_logits(images)
  assert features.shape == (7, NUM_POOL) and logits.shape == (7, NUM_LOGITS)
  assert features.dtype == np.float32
  np.testing.assert_array_equal(features[:, :3], np.tile([299, 299, 3], (7, 1)))
  minmax, means = _expected_stats(images)
  np.testing.assert_allclose(features[:, 3:5], minmax, atol=1e-6)
  assert features[:, 3].min() >= -1 and features[:, 4].max() <= 1
  np.testing.assert_allclose(features[:, 5:8], means, atol=1e-5)
  np.testing.assert_allclose(features[:, 5], features[:, 6])  # 1 channel tiled to 3.
  # Batching (3 + 3 + padded 1) gives the same rows as one batch, in order.
  big = classifiers.get_classifier("inception_local", path=standin_dir, batch_size=16)
  np.testing.assert_allclose(big.logits(images), logits, atol=1e-5)
  np.testing.assert_allclose(clf.features(images[4:5]), features[4:5], atol=1e-6)
  # A dataset of (image, label) examples gives the same result.
  ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(7, np.int32)))
  np.testing.assert_allclose(clf.logits(ds), logits, atol=1e-5)
  # 3-channel input at 299 passes through unchanged.
  rgb = _images(2, size=299, channels=3)
  np.testing.assert_allclose(clf.features(rgb)[:, 5:8], rgb.mean((1, 2)), atol=1e-5)


def test_inception_local_rejects_out_of_range_and_bad_channels(standin_dir):
  clf = classifiers.get_classifier("inception_local", path=standin_dir, batch_size=4)
  with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
    clf.features(np.full((2, 8, 8, 3), 255.0, np.float32))
  with pytest.raises(ConfigError, match="1- or 3-channel"):
    clf.features(np.zeros((2, 8, 8, 2), np.float32))


def test_inception_local_from_tar_gz_and_signature_only_module(standin_dir, tmp_path):
  archive = tmp_path / "inception_1.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    for entry in os.listdir(standin_dir):
      tar.add(os.path.join(standin_dir, entry), arcname=entry)
  images = _images(3)
  want = classifiers.get_classifier("inception_local", path=standin_dir).logits(images)
  got = classifiers.get_classifier("inception_local", path=str(archive)).logits(images)
  np.testing.assert_allclose(got, want, atol=1e-6)  # Variables survive the temp dir's deletion.
  # A module that only has a 'default' signature (as TF1 hub modules do) works too.
  module = _StandIn()
  fn = tf.function(module.run, input_signature=[_SPEC])
  path = str(tmp_path / "sig_only")
  tf.saved_model.save(module, path, signatures={"default": fn.get_concrete_function()})
  assert not callable(tf.saved_model.load(path))
  got = classifiers.get_classifier("inception_local", path=path).logits(images)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_inception_local_wrong_outputs_or_corrupt(tmp_path):
  module = tf.Module()
  module.__call__ = tf.function(lambda x: {"probs": tf.reduce_mean(x, [1, 2])},
                                input_signature=[_SPEC])
  path = str(tmp_path / "wrong")
  tf.saved_model.save(module, path)
  clf = classifiers.get_classifier("inception_local", path=path)
  with pytest.raises(ConfigError, match="'pool_3' and 'logits'"):
    clf.features(_images(1))
  bad = tmp_path / "bad.tar.gz"
  bad.write_bytes(b"garbage")
  with pytest.raises(ConfigError, match="--classifier=inception_local"):
    classifiers.get_classifier("inception_local", path=str(bad))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match="saved_model.pb"):
    classifiers.get_classifier("inception_local", path=str(tmp_path / "empty"))


def test_unreachable_inception_names_the_flags(monkeypatch, tmp_path):
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top

  def offline(handle, *args, **kwargs):
    raise OSError(f"<urlopen error [Errno -2] Name or service not known> ({handle})")

  monkeypatch.setattr(hub, "load", offline)
  for kwargs in [dict(kind="inception_hub"),
                 dict(kind="inception_local", path=str(tmp_path / "missing")),
                 dict(kind="inception_local")]:
    with pytest.raises(ConfigError) as info:
      classifiers.get_classifier(**kwargs)
    message = str(info.value)
    assert "--classifier=inception_local --classifier_path=" in message, kwargs
    assert "--classifier=domain --classifier_path=" in message, kwargs
  monkeypatch.undo()
  with pytest.raises(ConfigError, match="--classifier=inception_local"):
    classifiers.get_classifier("inception_hub", hub_handle=str(tmp_path / "no_module"))


def test_factory_rejects_unknown_kind_and_missing_files(tmp_path):
  with pytest.raises(ConfigError, match="domain, inception_hub, inception_local"):
    classifiers.get_classifier("resnet")
  with pytest.raises(ConfigError, match="--classifier=keras_inception_v3 --classifier_path"):
    classifiers.get_classifier("keras_inception_v3", path=str(tmp_path / "w.h5"))
  with pytest.raises(ConfigError, match="--classifier=domain --classifier_path"):
    classifiers.get_classifier("domain", path=str(tmp_path / "c.keras"))
  with pytest.raises(ConfigError, match="--classifier=domain --classifier_path"):
    classifiers.get_classifier("domain")
  gin.parse_config(f"get_classifier.kind = 'domain'\nget_classifier.path = '{tmp_path}/x.keras'")
  with pytest.raises(ConfigError, match="x.keras"):
    classifiers.get_classifier()


@pytest.mark.slow  # 17 s: builds the full InceptionV3
def test_keras_inception_v3_from_local_weights(tmp_path):
  keras.utils.set_random_seed(0)
  model = keras.applications.InceptionV3(weights=None, include_top=True)
  path = str(tmp_path / "inception_v3.weights.h5")
  model.save_weights(path)
  clf = classifiers.get_classifier("keras_inception_v3", path=path, batch_size=2)
  assert clf.name == "keras_inception_v3"
  features, logits = clf.features_and_logits(_images(2, size=32))
  assert features.shape == (2, 2048) and logits.shape == (2, 1000)
  # Pre-softmax logits: equal to the saved model's logits (its softmax output, inverted).
  x = tf.image.resize(tf.tile(_images(2, size=32), [1, 1, 1, 3]), [299, 299])
  probs = model(x, training=False).numpy()
  np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), probs, atol=1e-5)
  corrupt = tmp_path / "corrupt.weights.h5"
  corrupt.write_bytes(b"not hdf5")
  with pytest.raises(ConfigError, match="Cannot load Keras InceptionV3"):
    classifiers.get_classifier("keras_inception_v3", path=str(corrupt))


# ------------------------------------------------------------------------------------------------
# Domain classifier.

def _patch_dataset(n, seed, size=16):
  """3 classes: a bright 6x6 patch in one of three places on a dark noisy background."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n).astype(np.int32)
  images = -1 + 0.2 * rng.uniform(size=(n, size, size, 1))
  corners = [(1, 1), (1, 9), (9, 5)]
  for i, label in enumerate(labels):
    r, c = corners[label]
    images[i, r:r + 6, c:c + 6] = 0.8
  return images.astype(np.float32), labels


def _batched(images, labels, batch=50):
  return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


@pytest.fixture(scope="module")
def trained_cnn():
  train = _batched(*_patch_dataset(300, 0))
  test = _batched(*_patch_dataset(150, 1))
  model, history = dc.train_domain_classifier(train, test, epochs=3, num_classes=3, width=8,
                                              feature_dim=32, learning_rate=3e-3)
  return model, history, test


def test_domain_cnn_trains_to_high_accuracy(trained_cnn):
  model, history, test = trained_cnn
  assert history["test_accuracy"][-1] >= 0.95, history
  assert history["loss"][-1] < history["loss"][0]
  assert dc.evaluate_domain_classifier(model, test) == history["test_accuracy"][-1]
  assert model.get_layer("features").output.shape[-1] == 32
  assert model.output.shape[-1] == 3


def test_domain_classifier_save_load_round_trip(trained_cnn, tmp_path):
  model, _, _ = trained_cnn
  path = str(tmp_path / "models" / "cnn.keras")
  dc.save_domain_classifier(model, path, "fmnist_cnn", metadata={"test_accuracy": 1.0})
  meta = json.load(open(path + ".json"))
  assert meta["name"] == "fmnist_cnn" and meta["num_classes"] == 3
  assert meta["input_shape"] == [16, 16, 1] and meta["feature_dim"] == 32
  assert not [f for f in os.listdir(tmp_path / "models") if f.startswith(".tmp_")]
  clf = classifiers.get_classifier("domain", path=path, batch_size=32)
  assert clf.name == "fmnist_cnn"
  images, _ = _patch_dataset(40, 2)
  features, logits = clf.features_and_logits(images)
  assert features.shape == (40, 32) and logits.shape == (40, 3)
  np.testing.assert_allclose(logits, model(images, training=False).numpy(), atol=1e-5)
  penultimate = keras.Model(model.input, model.get_layer("features").output)
  np.testing.assert_allclose(features, penultimate(images).numpy(), atol=1e-5)
  # Other sizes are resized to the model's input; wrong channel counts are rejected.
  assert clf.features(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 32)
  with pytest.raises(ConfigError, match="1-channel"):
    clf.features(np.zeros((2, 16, 16, 3), np.float32))
  # Without the sidecar the name is the file's basename.
  os.remove(path + ".json")
  assert classifiers.get_classifier("domain", path=path).name == "cnn"
  with open(path + ".json", "w") as f:
    f.write("{broken")
  with pytest.raises(ConfigError, match="corrupt"):
    classifiers.get_classifier("domain", path=path)
  with open(path, "wb") as f:
    f.write(b"not a keras archive")
  with pytest.raises(ConfigError, match="Cannot load domain classifier"):
    classifiers.get_classifier("domain", path=path)
  with pytest.raises(ConfigError, match=r"\.keras"):
    dc.save_domain_classifier(model, str(tmp_path / "cnn.h5"), "x")


def _robustness_toy(n, seed, dims=49):
  """Tsipras et al.-style toy: one robust 90%-correct feature, many weak non-robust ones."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n).astype(np.int32)
  sign = 2.0 * labels - 1
  x = np.empty((n, dims))
  flip = np.where(rng.uniform(size=n) < 0.9, 1.0, -1.0)
  x[:, 0] = 0.8 * sign * flip
  x[:, 1:] = 0.15 * sign[:, None] + rng.normal(0, 0.3, (n, dims - 1))
  side = int(np.sqrt(dims))
  return np.clip(x, -1, 1).reshape(n, side, side, 1).astype(np.float32), labels


def _linear_model():
  # Zero init: the (adversarial) logistic loss of a linear model is convex: deterministic result.
  return keras.Sequential([keras.Input((7, 7, 1)), keras.layers.Flatten(),
                           keras.layers.Dense(2, kernel_initializer="zeros")])


def test_adversarial_training_makes_a_linear_toy_robust():
  train = _batched(*_robustness_toy(2000, 0), batch=100)
  test = _batched(*_robustness_toy(1000, 1), batch=500)
  kwargs = dict(epochs=8, learning_rate=0.02, epsilon=0.3, pgd_steps=5)
  standard, _ = dc.train_domain_classifier(train, None, model=_linear_model(), **kwargs)
  robust, history = dc.train_domain_classifier(train, test, model=_linear_model(),
                                               adversarial=True, eval_pgd_steps=10, **kwargs)
  attack = dict(epsilon=0.3, pgd_steps=10)
  standard_adv = dc.evaluate_domain_classifier(standard, test, **attack)
  robust_adv = dc.evaluate_domain_classifier(robust, test, **attack)
  assert dc.evaluate_domain_classifier(standard, test) > 0.95
  assert standard_adv < 0.3, standard_adv
  assert robust_adv > 0.8, robust_adv
  assert history["test_adv_accuracy"] == pytest.approx(robust_adv, abs=0.05)


# Slow (21 s in the quick suite): adversarial training of the domain classifier stays quick in
# test_adversarial_training_makes_a_linear_toy_robust.
@pytest.mark.slow
def test_adversarial_training_trains_on_attacked_inputs():
  """An 'attack' that erases the image leaves nothing to learn: fails if the attack is skipped."""
  calls = []

  def erase(x, loss_fn, epsilon, num_steps, step_size, random_start=False, seed=None,
            clip=True):
    calls.append(dict(epsilon=epsilon, num_steps=num_steps, step_size=step_size,
                      random_start=random_start, seed_shape=tuple(seed.shape), clip=clip,
                      loss_shape=tuple(loss_fn(x).shape)))
    return tf.zeros_like(x)

  train = _batched(*_patch_dataset(300, 0))
  test = _batched(*_patch_dataset(150, 1))
  model, history = dc.train_domain_classifier(
      train, test, epochs=3, num_classes=3, width=8, feature_dim=32, learning_rate=3e-3,
      adversarial=True, epsilon=0.2, pgd_steps=4, attack_fn=erase, eval_pgd_steps=0)
  assert calls and calls[0] == dict(epsilon=0.2, num_steps=4, step_size=0.125, random_start=True,
                                    seed_shape=(2,), clip=True, loss_shape=(50,))
  assert max(history["accuracy"]) < 0.6, history
  assert history["loss"][-1] > 0.9  # ~log(3): the model only sees blank images.
  assert history["test_accuracy"][-1] < 0.6
  assert "test_adv_accuracy" not in history
  del model


def test_build_domain_cnn_layout():
  model = dc.build_domain_cnn((28, 28, 1), 10)
  assert [l.name for l in model.layers[-2:]] == ["features", "logits"]
  assert model.output.shape[-1] == 10
  with pytest.raises(ConfigError):
    dc.build_domain_cnn((28, 28), 10)
