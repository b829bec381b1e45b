"""Sampling from a trained GAN (the EMA generator when the run has one): arrays in memory;
`images.write_samples` writes them to files."""

import weakref

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import rng
from tfadvgan.gans import latents


def latent_codes(g, num, seed=0, truncation=None):
  """The ``[num, latent_dim]`` codes of ``generate(gan, num, seed, truncation=...)``: standard
  normal from the stateless seed ``[seed, rng.SAMPLES_Z]``, truncated when ``truncation`` is set
  (``latents.truncate``)."""
  z = tf.random.stateless_normal([num, g.latent_dim], seed=[seed, rng.SAMPLES_Z])
  return z if truncation is None else latents.truncate(z, truncation, seed)


def generate(gan, num, seed=0, label=None, batch_size=256, truncation=None):
  """Samples from the run's sampler (EMA G when enabled); returns (images, labels or None).

  Conditional runs: every sample of class ``label``, or labels cycling ``i % num_classes``.
  ``truncation``: resample the entries of z with ``|z| > truncation`` (``latents.truncate``).
  """
  g = gan.sampler()
  errors.check(num >= 1, "--num must be >= 1.")
  if label is not None:
    errors.check(gan.conditional, "--label needs a class-conditional run.")
    errors.check(0 <= label < g.num_classes,
                 f"--label must be in [0, {g.num_classes}); got {label}.")
  z = latent_codes(g, num, seed, truncation)
  labels = None
  if gan.conditional:
    labels = (np.full([num], label) if label is not None
              else np.arange(num) % g.num_classes).astype(np.int32)
  return generate_from(gan, z, labels, batch_size), labels


def generate_from(gan, z, labels=None, batch_size=256):
  """Images of the run's sampler for codes ``z`` ``[N, latent_dim]`` (and labels ``[N]``)."""
  g = gan.sampler()
  z = tf.convert_to_tensor(z, tf.float32)
  num = int(z.shape[0])
  if labels is not None:
    labels = tf.convert_to_tensor(np.asarray(labels, np.int32))
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
  return np.concatenate(out)


def interpolation_sheet(gan, seeds, steps=8, method="slerp", truncation=None, label=None):
  """One row per consecutive pair of ``seeds``: ``steps`` images from the code of seed ``s``
  (``latent_codes(g, 1, s, truncation)``, the first sample of ``generate(gan, n, s)``) to that
  of the next seed. Conditional runs: class ``label`` in every row, else row r has class
  ``r % num_classes``.

  Returns:
    (images ``[rows * steps, ...]``, labels ``[rows * steps]`` or None, codes
    ``[rows * steps, latent_dim]``).
  """
  g = gan.sampler()
  seeds = [int(s) for s in seeds]
  errors.check(len(seeds) >= 2, f"An interpolation needs at least 2 seeds; got {seeds}.")
  errors.check(label is None or gan.conditional, "--label needs a class-conditional run.")
  errors.check(label is None or 0 <= label < g.num_classes,
               f"--label must be in [0, {g.num_classes}); got {label}.")
  ends = [latent_codes(g, 1, s, truncation).numpy()[0] for s in seeds]
  z = np.concatenate([latents.interpolate(a, b, steps, method) for a, b in zip(ends, ends[1:])])
  labels = None
  if gan.conditional:
    rows = np.arange(len(seeds) - 1) % g.num_classes if label is None else np.full(
        len(seeds) - 1, label)
    labels = np.repeat(rows, steps).astype(np.int32)
  return generate_from(gan, z, labels), labels, z


def class_sheet(gan, per_class=8, seed=0, truncation=None):
  """Row c: ``per_class`` samples of class c; column j uses the same code in every row
  (``latent_codes(g, per_class, seed, truncation)``). Returns (images ``[C * per_class, ...]``,
  labels ``[C * per_class]``)."""
  g = gan.sampler()
  errors.check(gan.conditional, "A class sheet needs a class-conditional run.")
  errors.check(per_class >= 1, f"--per_class must be >= 1; got {per_class}.")
  z = latent_codes(g, per_class, seed, truncation).numpy()
  labels = np.repeat(np.arange(g.num_classes), per_class).astype(np.int32)
  return generate_from(gan, np.tile(z, [g.num_classes, 1]), labels), labels


_COMPILED = weakref.WeakKeyDictionary()


def _compiled(g):
  """G in inference mode as one tf.function per generator (traced once per batch shape)."""
  fn = _COMPILED.get(g)
  if fn is None:
    g_ref = weakref.ref(g)  # the cached function must not keep its generator alive
    fn = tf.function(lambda z, labels: g_ref()(z, labels, training=False))
    _COMPILED[g] = fn
  return fn
