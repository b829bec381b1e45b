"""Shared test helpers: gin bindings that select each method on small models; dataset shapes; the
linear G/D pairs of the closed-form tests (plain and with an auxiliary-classifier head) and their
NumPy references; tiny run configs and a small labelled .npz; clusters of `scripts/train.py`
workers on 127.0.0.1."""

import glob
import json
import logging
import os
import socket
import subprocess
import sys
import time

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One binding list per method, with small attack budgets; tests add their own model bindings.
METHOD_BINDINGS = {
    "as_gan": ["build_gan.method = 'as_gan'", "ASGAN.epsilon = 0.05"],
    "dat": ["build_gan.method = 'dat'", "DAT.epsilon = 0.05", "GAN.loss = 'wasserstein'"],
    "robgan": ["build_gan.method = 'robgan'", "build_discriminator.head = 'ac'",
               "RobGAN.epsilon = 0.05", "RobGAN.pgd_steps = 2", "RobGAN.step_size = 0.03"],
    "fast_robgan": ["build_gan.method = 'fast_robgan'", "build_discriminator.head = 'ac'",
                    "FastRobGAN.epsilon = 0.05", "FastRobGAN.batch_size = 8",
                    "GAN.loss = 'hinge'"],
}


# (shape, classes) of each dataset source, so that a config's networks can be built without data.
SHAPES = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100),
          "celeb_a": ((64, 64, 3), 0), "lsun_bedroom": ((64, 64, 3), 0),
          "idx": ((32, 32, 1), 10), "fashion_mnist": ((32, 32, 1), 10), "mnist": ((32, 32, 1), 10),
          "ring": ((2,), 0), "grid": ((2,), 0)}


def shape_of(source):
  """(sample shape, classes) of a dataset source, under the parsed gin config."""
  if str(source).startswith("imagenet143"):
    return (gin.query_parameter("dataset.resolution"),) * 2 + (3,), 143
  return SHAPES[source]


def write_idx(path, array):
  """Writes `array` (uint8) as an IDX file (gzip-compressed when `path` ends in .gz)."""
  import gzip  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  array = np.asarray(array, np.uint8)
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  header += struct.pack(">" + "I" * array.ndim, *array.shape)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())


# ------------------------------------------------------------------ linear G / D (plain head)
LATENT, DIM = 3, 2


class LinearG(keras.Model):
  """G(z) = z K + b."""

  def __init__(self):
    super().__init__()
    self.latent_dim, self.num_classes = LATENT, 0
    self.dense = keras.layers.Dense(DIM, kernel_initializer="glorot_uniform",
                                    bias_initializer="zeros")
    self(tf.zeros([1, LATENT]))

  def call(self, z, labels=None, training=None):
    return self.dense(z)


class LinearD(keras.Model):
  """D(x) = x w + c."""

  def __init__(self):
    super().__init__()
    self.num_classes, self.head = 0, "plain"
    self.dense = keras.layers.Dense(1, kernel_initializer="glorot_uniform")
    self(tf.zeros([1, DIM]))

  def call(self, x, labels=None, training=None):
    return {"logits": self.dense(x)[:, 0]}


def batches(n_dis, batch=8, steps=4, seed=0):
  rng = np.random.default_rng(seed)
  n = batch * steps
  arrays = {"images": rng.normal(size=(n, n_dis, DIM)).astype("f4"),
            "z_d": rng.normal(size=(n, n_dis, LATENT)).astype("f4"),
            "z_g": rng.normal(size=(n, LATENT)).astype("f4")}
  return arrays, tf.data.Dataset.from_tensor_slices(arrays).batch(batch, drop_remainder=True)


def sigmoid(t):
  return 1.0 / (1.0 + np.exp(-t))


# ------------------------------------------------------------------ linear G / D with an AC head
AC_LATENT, AC_DIM, CLASSES, B = 3, 4, 3, 8




class LinearACG(keras.Model):
  """G(z, y) = z K + b (the label is accepted and ignored)."""

  def __init__(self):
    super().__init__()
    self.latent_dim, self.num_classes, self.output_shape_ = AC_LATENT, CLASSES, (AC_DIM,)
    self.dense = keras.layers.Dense(AC_DIM)
    self(tf.zeros([1, AC_LATENT]))

  def call(self, z, labels=None, training=None):
    return self.dense(z)


class LinearACD(keras.Model):
  """D(x) = {logits: x w + c, class_logits: x V + b}; records the training flags it sees."""

  def __init__(self, head="ac"):
    super().__init__()
    self.num_classes, self.head, self.input_shape_ = CLASSES, head, (DIM,)
    self.logit = keras.layers.Dense(1)
    self.classifier = keras.layers.Dense(CLASSES)
    self.modes = []
    self(tf.zeros([1, AC_DIM]))

  def call(self, x, labels=None, training=None):
    self.modes.append(training)
    return {"logits": self.logit(x)[:, 0], "class_logits": self.classifier(x)}


def set_ac_weights(gan, seed=0):
  rng = np.random.default_rng(seed)
  d = gan.discriminator
  d.logit.kernel.assign(rng.normal(size=(AC_DIM, 1)).astype("f4"))
  d.logit.bias.assign([0.1])
  d.classifier.kernel.assign(rng.normal(size=(AC_DIM, CLASSES)).astype("f4"))
  d.classifier.bias.assign(rng.normal(size=CLASSES).astype("f4") * 0.1)
  gan.generator.dense.kernel.assign(rng.normal(size=(AC_LATENT, AC_DIM)).astype("f4") * 0.5)
  gan.generator.dense.bias.assign(np.zeros(AC_DIM, "f4"))


def ac_arrays(n_dis=1, batch=B, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, size=(batch, n_dis, AC_DIM)).astype("f4")
  images[:, :, 0] = np.sign(images[:, :, 0]) * 0.98  # near the range edge: the clip matters
  return {"images": images,
          "labels": rng.integers(0, CLASSES, size=(batch, n_dis)).astype("i4"),
          "z_d": rng.normal(size=(batch, n_dis, AC_LATENT)).astype("f4"),
          "z_g": rng.normal(size=(batch, AC_LATENT)).astype("f4"),
          "y_d": rng.integers(0, CLASSES, size=(batch, n_dis)).astype("i4"),
          "y_g": rng.integers(0, CLASSES, size=(batch,)).astype("i4")}


def ac_dataset(data, batch=B):
  return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)


def make_ac(cls=None, strategy=None, lr=0.1, g_lr=0.05, seed=0, head="ac", **kwargs):
  """D's SGD learning rate is `lr`, G's is `g_lr`: different, so that a D/G mix-up shows."""
  if cls is None:
    from tfadvgan.gans.robgan import RobGAN  # pylint: disable=g-import-not-at-top
    cls = RobGAN
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    gan = cls(LinearACG(), LinearACD(head), conditional=True, **kwargs)
    set_ac_weights(gan, seed)
    gan.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(g_lr), jit_compile=False)
  return gan


def softmax(a):
  e = np.exp(a - a.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def onehot(y):
  return np.eye(CLASSES)[y]


def d_params(gan):
  d = gan.discriminator
  return [v.numpy().astype(np.float64) for v in (d.logit.kernel, d.logit.bias,
                                                 d.classifier.kernel, d.classifier.bias)]


# ------------------------------------------------------------------ tiny runs
TINY = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
        "train.num_steps = 2", "train.log_every_steps = 1", "train.checkpoint_every_steps = 1",
        "train.sample_every_steps = 2", "make_train_dataset.shuffle_buffer = 16", "train.verbose = 0",
        "build_gan.run_eagerly = True"]


def logged(caplog, level=logging.INFO):
  """The messages the library logged (absl) at exactly `level`; the test sets
  `caplog.set_level(logging.INFO, logger="absl")` first."""
  return [r.getMessage() for r in caplog.records if r.levelno == level]


def parse(files, params=()):
  gin.clear_config()
  config.parse_gin([os.path.join(ROOT, f) for f in files], list(params))


def small_npz(tmp_path, n=64, shape=(32, 32, 1), classes=10):
  rng = np.random.default_rng(0)
  path = str(tmp_path / "data.npz")
  np.savez(path, images=rng.integers(0, 256, (n,) + shape).astype(np.uint8),
           labels=(np.arange(n) % classes).astype(np.int64))
  return path


# ------------------------------------------------------------------ clusters on 127.0.0.1
TIMEOUT = 240  # seconds a cluster may take before its children are killed


def free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def start_cluster(config, model_dir, params=(), log_prefix=None):
  """Starts two workers; returns their Popen objects (stdout+stderr to `log_prefix`.w{i}.log)."""
  ports = free_ports(2)
  procs = []
  for i in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": i}}))
    log = open(f"{log_prefix or model_dir}.w{i}.log", "w")
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--gin_file={config}",
         f"--model_dir={model_dir}", "--strategy=multi_worker"]
        + [f"--gin_param={p}" for p in params], env=env, stdout=log, stderr=subprocess.STDOUT))
    log.close()
  return procs


def wait_all(procs, timeout=TIMEOUT):
  """Waits for every process; kills them all if any is still running after `timeout`."""
  deadline = time.time() + timeout
  codes = []
  try:
    for p in procs:
      codes.append(p.wait(timeout=max(deadline - time.time(), 1)))
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    pytest.fail(f"cluster did not finish within {timeout} s")
  return codes


def read_log(model_dir, i):
  with open(f"{model_dir}.w{i}.log") as f:
    return f.read()


def latest_step(model_dir):
  path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
  return int(path.rsplit("-", 1)[1]) if path else None


def checkpoint_arrays(path):
  reader = tf.train.load_checkpoint(path)
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if "save_counter" not in k and not k.startswith("_CHECKPOINTABLE")}


def summary_events(directory):
  """{tag: [(step, summary value)]} of every summary written under `directory`."""
  tags = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append((event.step, value))
  return tags


def event_scalars(directory, tag):
  """{step: value} of one scalar tag in a run's train/ events."""
  out = {}
  for path in tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          out[event.step] = float(tf.make_ndarray(value.tensor))
  return out


# A small DCGAN-shaped Fast-RobGAN for multi-process tests (AC head, synchronized BN in G, no BN in
# D); `.format(root=ROOT, data=NPZ)`, then add the run's own bindings.
SMALL_FAST_ROBGAN = """
include '{root}/gin_configs/common/fast_robgan.gin'
dataset.source = 'npz'
dataset.path = '{data}'
build_generator.arch = 'dcgan'
build_generator.upsampling = None
build_discriminator.arch = 'dcgan'
build_generator.width = 8
build_discriminator.width = 8
build_generator.synchronized_bn = True
build_gan.latent_dim = 16
"""
