"""Sampling from a trained GAN (the EMA generator when the run has one)."""

import weakref

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import io
from tfadvgan import rng


def generate(gan, num, seed=0, label=None, batch_size=256):
  """Samples from the run's sampler (EMA G when enabled); returns (images, labels or None)."""
  g = gan.sampler()
  errors.check(num >= 1, "--num must be >= 1.")
  if label is not None:
    errors.check(gan.conditional, "--label needs a class-conditional run.")
    errors.check(0 <= label < g.num_classes,
                 f"--label must be in [0, {g.num_classes}); got {label}.")
  z = tf.random.stateless_normal([num, g.latent_dim], seed=[seed, rng.SAMPLES_Z])
  labels = None
  if gan.conditional:
    labels = (tf.fill([num], label) if label is not None
              else tf.range(num, dtype=tf.int32) % g.num_classes)
    labels = tf.cast(labels, tf.int32)
  size = min(batch_size, num)
  fn = _compiled(g)
  out = []
  for i in range(0, num, size):
    zb = z[i:i + size]
    n = int(zb.shape[0])
    lab = labels[i:i + size] if labels is not None else None
    if n < size:  # pad the last batch: one static shape, one trace (inference mode: per example)
      zb = tf.concat([zb, tf.zeros([size - n, g.latent_dim], zb.dtype)], 0)
      if lab is not None:
        lab = tf.concat([lab, tf.zeros([size - n], lab.dtype)], 0)
    out.append(fn(zb, lab).numpy()[:n])
  return np.concatenate(out), (labels.numpy() if labels is not None else None)


_COMPILED = weakref.WeakKeyDictionary()


def _compiled(g):
  """G in inference mode as one tf.function per generator (traced once per batch shape)."""
  fn = _COMPILED.get(g)
  if fn is None:
    g_ref = weakref.ref(g)  # the cached function must not keep its generator alive
    fn = tf.function(lambda z, labels: g_ref()(z, labels, training=False))
    _COMPILED[g] = fn
  return fn


def write_samples(out_dir, samples, labels=None, per_grid=64):
  """Writes `samples.npz` (`images`, and `labels` when given) and, for images, PNG grids of
  `per_grid` samples (`grid_000.png`, ...) to `out_dir` (any tf.io.gfile path).

  Returns:
    (npz path, [PNG paths]).
  """
  from tfadvgan import images  # pylint: disable=g-import-not-at-top
  errors.check(per_grid >= 1, f"--per_grid must be >= 1; got {per_grid}.")
  io.makedirs(out_dir)
  written = []
  if samples.ndim == 4:
    for j, i in enumerate(range(0, len(samples), per_grid)):
      path = io.join(out_dir, f"grid_{j:03d}.png")
      images.write_png(path, images.grid(samples[i:i + per_grid]))
      written.append(path)
  arrays = {"images": samples} if labels is None else {"images": samples, "labels": labels}
  npz = io.join(out_dir, "samples.npz")
  io.save_npz(npz, **arrays)
  return npz, written
