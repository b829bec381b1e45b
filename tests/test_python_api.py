"""The Python API: `tfadvgan`'s exports and version, models built from keyword arguments alone,
plain datasets in `gan.fit` and `tfadvgan.fit` (checked against the dict batches of the pipeline),
Keras callbacks under `tfadvgan.fit`, and two replicas."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfadvgan
from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan import errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("GAN", "ASGAN", "DAT", "RobGAN", "FastRobGAN")


def weights(gan):
  return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]


def mlp_gan(method, shape=(2,), classes=0, seed=0, n_dis=1, eager=True, lr=0.05, **kwargs):
  """A small MLP GAN built and compiled from keyword arguments only, with fixed initial weights."""
  keras.utils.set_random_seed(7)
  g = tfadvgan.build_generator(arch="mlp", output_shape=shape, latent_dim=3, width=16,
                               num_classes=classes)
  d = tfadvgan.build_discriminator(arch="mlp", input_shape=shape, width=16, num_classes=classes,
                                   head="ac" if classes else "plain")
  gan = getattr(tfadvgan, method)(g, d, seed=seed, n_dis=n_dis, **kwargs)
  gan.compile(d_optimizer=keras.optimizers.SGD(lr), g_optimizer=keras.optimizers.SGD(lr),
              run_eagerly=eager, jit_compile=not eager)
  return gan


# ----------------------------------------------------------------- the package
def test_import_is_cheap_and_the_version_has_one_source():
  """`import tfadvgan` loads no TensorFlow (the scripts' --help relies on it); setup.py reads the
  version that the package exports."""
  code = "import sys, tfadvgan; print(tfadvgan.__version__, 'tensorflow' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT)).stdout.split()
  assert out == [tfadvgan.__version__, "False"]
  with open(os.path.join(ROOT, "setup.py")) as f:
    assert "version=VERSION" in f.read()
  setup_version = subprocess.run([sys.executable, "setup.py", "--version"], capture_output=True,
                                 text=True, check=True, cwd=ROOT).stdout.split()[-1]
  assert setup_version == tfadvgan.__version__
  assert re.fullmatch(r"\d+\.\d+\.\d+", tfadvgan.__version__)


def test_every_public_name_resolves():
  for name in tfadvgan.__all__:
    assert getattr(tfadvgan, name) is not None, name
  assert tfadvgan.fit.__module__ == "tfadvgan.training.fit"
  assert tfadvgan.ASGAN is tfadvgan.gans.ASGAN and tfadvgan.data.load is data_lib.load
  assert set(tfadvgan.METHODS.values()) == {getattr(tfadvgan, m) for m in METHODS}
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    tfadvgan.nope  # pylint: disable=pointless-statement


# ----------------------------------------------------------------- keyword arguments, no gin
@pytest.mark.parametrize("method", METHODS)
def test_every_method_builds_from_keyword_arguments(method):
  """With gin cleared (conftest), every method builds from keyword arguments; the AC methods take
  `build_discriminator(head='ac')`."""
  classes = 3 if method in ("RobGAN", "FastRobGAN") else 0
  kwargs = {"batch_size": 8} if method == "FastRobGAN" else {}
  gan = mlp_gan(method, classes=classes, conditional=bool(classes), **kwargs)
  assert gan.method_name == tfadvgan.gans.get(gan.method_name).method_name
  assert gan.discriminator.head == ("ac" if classes else "plain")


def test_the_ema_copy_is_built_from_the_generator_config():
  """`ema_decay` without a `generator_factory`: the EMA copy is G's class from G's config, a
  separate model that starts at G's weights and then follows them with the decay."""
  gan = mlp_gan("GAN", ema_decay=0.5)
  ema, g = gan.generator_ema, gan.generator
  assert type(ema) is type(g) and ema is not g and ema.get_config() == g.get_config()
  before = [w.numpy() for w in g.weights]
  for a, b in zip(ema.weights, g.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  points = np.random.default_rng(15).uniform(-0.9, 0.9, (8, 2)).astype(np.float32)
  tfadvgan.fit(gan, tf.data.Dataset.from_tensor_slices(points).batch(8, drop_remainder=True),
               verbose=0)
  for a, b, s in zip(ema.weights, g.weights, before):  # one step: 0.5 * old + 0.5 * new
    np.testing.assert_allclose(a.numpy(), 0.5 * s + 0.5 * b.numpy(), rtol=1e-6, atol=1e-7)
  assert any(np.abs(b.numpy() - s).max() > 1e-4 for b, s in zip(g.weights, before))


def test_the_ac_methods_are_conditional_unless_told_otherwise():
  gan = mlp_gan("RobGAN", classes=3)  # no conditional= argument
  assert gan.conditional and not mlp_gan("ASGAN").conditional
  with pytest.raises(errors.ConfigError, match="RobGAN is class-conditional: leave conditional"):
    mlp_gan("RobGAN", classes=3, conditional=False)


def test_predict_and_call_sample_the_ema_generator_and_evaluate_is_one_line():
  """`gan(z)` and `gan.predict(z)` are the sampler's (EMA) outputs, not G's; a conditional GAN
  takes (z, labels) or a dict; a missing label and `evaluate` are refused in one line."""
  gan = mlp_gan("GAN", ema_decay=0.5)
  points = np.random.default_rng(16).uniform(-0.9, 0.9, (8, 2)).astype(np.float32)
  tfadvgan.fit(gan, tf.data.Dataset.from_tensor_slices(points).batch(8, drop_remainder=True),
               verbose=0)
  z = np.random.default_rng(17).normal(size=(5, 3)).astype(np.float32)
  want = gan.generator_ema(z, training=False).numpy()
  assert np.abs(want - gan.generator(z, training=False).numpy()).max() > 1e-4
  np.testing.assert_allclose(gan.predict(z, batch_size=2, verbose=0), want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(gan(z).numpy(), want, rtol=1e-6, atol=1e-7)
  with pytest.raises(errors.ConfigError, match="no Keras evaluate") as info:
    gan.evaluate(z)
  assert "\n" not in str(info.value)
  cond = mlp_gan("RobGAN", classes=3)
  labels = np.array([2, 0, 1, 1, 0], np.int32)
  want = cond.sampler()(z, labels, training=False).numpy()
  assert np.abs(want - cond.sampler()(z, labels[::-1].copy(), training=False).numpy()).max() > 1e-4
  for x in ((z, labels), {"z": z, "labels": labels}):
    np.testing.assert_allclose(cond.predict(x, batch_size=2, verbose=0), want, rtol=1e-6,
                               atol=1e-7)
  with pytest.raises(errors.ConfigError, match="^This GAN is class-conditional: pass"):
    cond.predict(z, verbose=0)
  with pytest.raises(errors.ConfigError, match="z of shape \\[batch, 3\\]; got \\(5, 4\\)"):
    gan.predict(np.zeros((5, 4), np.float32), verbose=0)


def test_build_gan_gives_the_ac_methods_their_head_without_gin():
  import gin  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as loop  # pylint: disable=g-import-not-at-top
  gin.bind_parameter("build_discriminator.arch", "mlp")
  gin.bind_parameter("build_generator.arch", "mlp")
  gan = loop.build_gan((2,), 3, method="robgan", run_eagerly=True)
  assert gan.discriminator.head == "ac" and gan.conditional
  assert loop.build_gan((2,), 3, method="as_gan", run_eagerly=True).discriminator.head == "plain"
  # A head bound in gin wins, and a wrong one is refused, not replaced.
  gin.bind_parameter("build_discriminator.head", "plain")
  with pytest.raises(errors.ConfigError, match="auxiliary-classifier head"):
    loop.build_gan((2,), 3, method="robgan", run_eagerly=True)


# ----------------------------------------------------------------- plain datasets
def dict_batches(images, labels, batch, n_dis, seed, conditional, steps):
  """The first `steps` batches of `make_train_dataset` over these arrays, as numpy dicts."""
  source = data_lib.from_arrays(images, labels)
  ds = data_lib.make_train_dataset(source, batch_size=batch, n_dis=n_dis, latent_dim=3, seed=seed,
                                   conditional=conditional, shuffle_buffer=8)
  return [tf.nest.map_structure(lambda v: v.numpy(), b) for b in ds.take(steps)]


def as_dataset(batches):
  return tf.data.Dataset.from_tensor_slices(
      {k: np.stack([b[k] for b in batches]) for k in batches[0]})


def test_plain_batches_train_as_the_dict_batches_unconditional():
  """AS-GAN, n_dis = 2, two steps: plain image batches (the GAN draws the noise) give the same
  weights as the pipeline's dict batches of the same examples with the same seed."""
  rng = np.random.default_rng(11)
  points = rng.uniform(-0.9, 0.9, (64, 2)).astype(np.float32)
  batches = dict_batches(points, None, batch=4, n_dis=2, seed=5, conditional=False, steps=2)
  flat = np.concatenate([b["images"].reshape(-1, 2) for b in batches])  # rows (r, k) in order
  plain = tf.data.Dataset.from_tensor_slices(flat).batch(4, drop_remainder=True)
  reference = mlp_gan("ASGAN", seed=5, n_dis=2, epsilon=0.05)
  tfadvgan.fit(reference, as_dataset(batches), verbose=0)
  gan = mlp_gan("ASGAN", seed=5, n_dis=2, epsilon=0.05)
  history = tfadvgan.fit(gan, plain, verbose=0)
  assert int(gan.global_step.numpy()) == 2 and len(history.history["d_loss"]) == 1
  start = weights(mlp_gan("ASGAN", seed=5, n_dis=2, epsilon=0.05))
  for a, b, s in zip(weights(reference), weights(gan), start):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
  assert max(np.abs(a - s).max() for a, s in zip(weights(gan), start)) > 1e-3


def test_plain_batches_train_as_the_dict_batches_conditional():
  """Rob-GAN: (images, labels) batches through Keras's `gan.fit` (two epochs of one step: the
  second continues the data and the noise) give the weights of the dict batches (with the
  pipeline's fake labels) through `tfadvgan.fit`."""
  rng = np.random.default_rng(12)
  points = rng.uniform(-0.9, 0.9, (48, 4)).astype(np.float32)
  labels = rng.integers(0, 3, 48)
  batches = dict_batches(points, labels, batch=6, n_dis=1, seed=9, conditional=True, steps=2)
  assert "y_g" in batches[0]
  plain = tf.data.Dataset.from_tensor_slices(
      (np.concatenate([b["images"][:, 0] for b in batches]),
       np.concatenate([b["labels"][:, 0] for b in batches]))).batch(6, drop_remainder=True)
  kwargs = dict(shape=(4,), classes=3, seed=9, conditional=True, epsilon=0.05, pgd_steps=2,
                step_size=0.03)
  reference = mlp_gan("RobGAN", **kwargs)
  tfadvgan.fit(reference, as_dataset(batches), verbose=0)
  gan = mlp_gan("RobGAN", **kwargs)
  gan.fit(plain, epochs=2, steps_per_epoch=1, verbose=0)
  assert int(gan.global_step.numpy()) == 2
  for a, b in zip(weights(reference), weights(gan)):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


# Slow (12 s in the quick suite): two replicas with per-replica XLA match one device in the quick
# tests/test_replica_xla.py (AS-GAN), and plain batches train as dict batches in the two tests above.
@pytest.mark.slow
def test_two_replicas_with_per_replica_xla_match_one_device():
  """A plain dataset under MirroredStrategy on two logical CPUs, with per-replica XLA: each
  replica takes its rows of the global batch and its noise, so the weights equal one device's
  (run eagerly: the noise is drawn by tf.data, not by XLA)."""
  points = np.random.default_rng(13).uniform(-0.9, 0.9, (32, 2)).astype(np.float32)
  plain = tf.data.Dataset.from_tensor_slices(points).batch(8, drop_remainder=True)
  one = mlp_gan("ASGAN", seed=3, eager=True, epsilon=0.05)
  tfadvgan.fit(one, plain, epochs=2, steps_per_epoch=1, verbose=0)
  # The process's one MirroredStrategy on these devices: a second one in the same process reuses
  # collective keys with other shapes, which breaks the collectives of whichever runs later.
  strategy = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  with strategy.scope():
    two = mlp_gan("ASGAN", seed=3, eager=False, epsilon=0.05)
  tfadvgan.fit(two, plain, epochs=2, steps_per_epoch=1, verbose=0)
  assert two.replica_jit and two.distribute_strategy.num_replicas_in_sync == 2
  assert int(two.global_step.numpy()) == 2
  for a, b in zip(weights(one), weights(two)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("element, conditional, message", [
    (tf.TensorSpec([8, 3], tf.float32), False, r"take batches \[None, 2\]"),
    (tf.TensorSpec([None, 2], tf.float32), False, "no static batch size"),
    (tf.TensorSpec([8, 2], tf.int32), False, "give floats in"),
    (tf.TensorSpec([8, 2], tf.float32), True, "give \\(images, labels\\) batches"),
    ((tf.TensorSpec([8, 2], tf.float32), tf.TensorSpec([8, 1], tf.int32)), True,
     r"integer class ids of shape \[8\]"),
    ((tf.TensorSpec([8, 2], tf.float32),) * 3, False, "fit takes a dataset of image batches"),
    ({"images": tf.TensorSpec([8, 1, 2], tf.float32), "z_g": tf.TensorSpec([8, 3], tf.float32)},
     False, "n_dis = 2 D updates"),
    ({"images": tf.TensorSpec([8, 2, 2], tf.float32)}, False, "lack 'images' or the noise"),
])
def test_a_batch_of_the_wrong_form_is_refused_in_one_line(element, conditional, message):
  zeros = tf.nest.map_structure(lambda s: tf.zeros([d or 8 for d in s.shape], s.dtype), element)
  ds = tf.data.Dataset.from_tensors(zeros)
  if tf.nest.flatten(element)[0].shape[0] is None:
    ds = tf.data.Dataset.from_tensor_slices(tf.zeros([16, 2])).batch(8)
  n_dis = 2 if isinstance(element, dict) else 1
  with pytest.raises(errors.ConfigError, match=message) as info:
    data_lib.train_batches(ds, n_dis, (2,), conditional, latent_dim=3)
  assert "\n" not in str(info.value)


def test_fit_checks_its_arguments():
  points = tf.data.Dataset.from_tensor_slices(tf.zeros([16, 2])).batch(8, drop_remainder=True)
  keras.utils.set_random_seed(1)
  g = tfadvgan.build_generator(arch="mlp", output_shape=(2,), latent_dim=3, width=4)
  d = tfadvgan.build_discriminator(arch="mlp", input_shape=(2,), width=4)
  with pytest.raises(errors.ConfigError, match="compile the GAN first"):
    tfadvgan.fit(tfadvgan.GAN(g, d), points)
  gan = mlp_gan("GAN")
  with pytest.raises(errors.ConfigError, match="pass steps_per_epoch"):
    tfadvgan.fit(gan, points.repeat())


# ----------------------------------------------------------------- Keras callbacks
class Record(keras.callbacks.Callback):
  """Records epochs, the steps seen and stops or crashes on request."""

  def __init__(self, stop_after=None, crash_after=None):
    super().__init__()
    self.epochs, self.batches = [], []
    self.stop_after, self.crash_after = stop_after, crash_after

  def on_train_batch_end(self, batch, logs=None):
    self.batches.append(batch)

  def on_epoch_end(self, epoch, logs=None):
    self.epochs.append((epoch, int(self.model.global_step.numpy()), sorted(logs)))
    if epoch == self.stop_after:
      self.model.stop_training = True
    if epoch == self.crash_after:
      raise RuntimeError("planted crash")


def test_fit_runs_keras_callbacks_by_epoch_and_resumes_with_backup_and_restore(tmp_path):
  points = np.random.default_rng(14).uniform(-0.9, 0.9, (24, 2)).astype(np.float32)
  plain = tf.data.Dataset.from_tensor_slices(points).batch(4, drop_remainder=True)  # 6 steps
  gan = mlp_gan("GAN")
  record = Record(stop_after=1)
  history = tfadvgan.fit(gan, plain, epochs=5, steps_per_epoch=3, callbacks=[record], verbose=0)
  assert [e[:2] for e in record.epochs] == [(0, 3), (1, 6)]  # stopped after epoch 1
  assert record.batches == [0, 1, 2, 0, 1, 2] and history.epoch == [0, 1]
  assert record.epochs[0][2] == sorted(history.history) and "d_loss" in history.history

  backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
  gan = mlp_gan("GAN")
  with pytest.raises(RuntimeError, match="planted crash"):
    tfadvgan.fit(gan, plain, epochs=4, callbacks=[backup, Record(crash_after=1)], verbose=0)
  saved = weights(gan)
  gan = mlp_gan("GAN")  # a new process would build the same fresh model
  record = Record()
  tfadvgan.fit(gan, plain, epochs=4, callbacks=[backup, record], verbose=0)
  assert [e[:2] for e in record.epochs] == [(2, 18), (3, 24)]  # resumed at epoch 2, step 12
  assert not np.allclose(weights(gan)[0], saved[0])


# ----------------------------------------------------------------- the README's example
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def readme_example():
  """The first ```python block of README.md's "Python API" section."""
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  section = text[text.index("\n## Python API\n"):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_is_python_and_about_twenty_lines():
  code = readme_example()
  compile(code, "README.md", "exec")
  assert 15 <= len(code.strip().splitlines()) <= 25
  for step in ("tfadvgan.ASGAN(", ".compile(", "tfadvgan.fit(", "callbacks=", "generate(",
               ".save(", "load_model("):
    assert step in code, step


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST), reason=f"no Fashion-MNIST at {FASHION_MNIST}")
def test_readme_example_runs(tmp_path):
  """Runs the README's Python block as written, in a fresh process, with Keras's Fashion-MNIST
  download served from the local copy (KERAS_HOME/datasets/fashion-mnist)."""
  home = tmp_path / "keras_home" / "datasets"
  home.mkdir(parents=True)
  os.symlink(FASHION_MNIST, home / "fashion-mnist")
  (tmp_path / "example.py").write_text(readme_example())
  env = dict(os.environ, PYTHONPATH=ROOT, KERAS_HOME=str(tmp_path / "keras_home"),
             TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Epoch 2/2" in proc.stdout
  assert os.listdir(tmp_path / "logs" / "train")
  assert (tmp_path / "generator.keras").exists() and not (tmp_path / "backup").exists()


# ----------------------------------------------------------------- multi-worker
WORKER_SCRIPT = """'''Trains a small AS-GAN with tfadvgan.fit under the strategy TF_CONFIG implies; saves weights.'''
import json, os, sys
import keras
import numpy as np
import tensorflow as tf
import tfadvgan

out = sys.argv[1]
strategy = (tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ
            else tf.distribute.get_strategy())
keras.utils.set_random_seed(7)
with strategy.scope():
  G = tfadvgan.build_generator(arch="mlp", output_shape=(2,), latent_dim=3, width=16)
  D = tfadvgan.build_discriminator(arch="mlp", input_shape=(2,), width=16)
  gan = tfadvgan.ASGAN(G, D, epsilon=0.05, seed=3)
  gan.compile(d_optimizer=keras.optimizers.SGD(0.05), g_optimizer=keras.optimizers.SGD(0.05))
points = np.random.default_rng(13).uniform(-0.9, 0.9, (32, 2)).astype(np.float32)
ds = tf.data.Dataset.from_tensor_slices(points).batch(8, drop_remainder=True)
epochs = []
class Epochs(keras.callbacks.Callback):
  def on_epoch_end(self, epoch, logs=None):
    epochs.append([epoch, int(self.model.global_step.numpy())])
history = tfadvgan.fit(gan, ds, epochs=2, steps_per_epoch=2, verbose=0, callbacks=[Epochs()])
np.savez(out, *[w.numpy() for w in G.weights + D.weights])
with open(out + ".json", "w") as f:
  json.dump({"epochs": epochs, "replicas": strategy.num_replicas_in_sync,
             "d_loss": history.history["d_loss"]}, f)
"""


@pytest.mark.slow  # 68 s: two workers and one single process on a loaded 2-core machine
def test_fit_under_multi_worker_gives_the_one_process_weights(tmp_path):
  """`tfadvgan.fit` under MultiWorkerMirroredStrategy (two local worker processes, one CPU each):
  both workers end with the weights of one process on the same plain dataset, with the same
  epochs and epoch logs (what Keras's own fit cannot run)."""
  from helpers import free_ports  # pylint: disable=g-import-not-at-top
  (tmp_path / "train.py").write_text(WORKER_SCRIPT)
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_CONFIG", None)
  ports = free_ports(2)
  procs = []
  for i in range(2):
    config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
              "task": {"type": "worker", "index": i}}
    procs.append(subprocess.Popen([sys.executable, "train.py", f"w{i}.npz"], cwd=tmp_path,
                                  env=dict(env, TF_CONFIG=json.dumps(config))))
  try:
    subprocess.run([sys.executable, "train.py", "one.npz"], cwd=tmp_path, env=env, check=True,
                   timeout=600)
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  runs = {n: (np.load(tmp_path / f"{n}.npz"), json.loads((tmp_path / f"{n}.npz.json").read_text()))
          for n in ("w0", "w1", "one")}
  one_weights, one_info = runs["one"]
  assert one_info["replicas"] == 1 and one_info["epochs"] == [[0, 2], [1, 4]]
  for name in ("w0", "w1"):
    weights_, info = runs[name]
    assert info["replicas"] == 2 and info["epochs"] == one_info["epochs"]
    np.testing.assert_allclose(info["d_loss"], one_info["d_loss"], rtol=1e-5)
    for key in one_weights:
      np.testing.assert_allclose(weights_[key], one_weights[key], rtol=1e-5, atol=1e-6)
