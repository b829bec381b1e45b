"""Sampling from a trained GAN (the EMA generator when the run has one)."""

import numpy as np
import tensorflow as tf

from tfadvgan import errors


def generate(gan, num, seed=0, label=None, batch_size=256):
  """Samples from the run's sampler (EMA G when enabled); returns (images, labels or None)."""
  g = gan.sampler()
  errors.check(num >= 1, "--num must be >= 1.")
  if label is not None:
    errors.check(gan.conditional, "--label needs a class-conditional run.")
    errors.check(0 <= label < g.num_classes,
                 f"--label must be in [0, {g.num_classes}); got {label}.")
  z = tf.random.stateless_normal([num, g.latent_dim], seed=[seed, 7])
  labels = None
  if gan.conditional:
    labels = (tf.fill([num], label) if label is not None
              else tf.range(num, dtype=tf.int32) % g.num_classes)
    labels = tf.cast(labels, tf.int32)
  out = []
  for i in range(0, num, batch_size):
    lab = labels[i:i + batch_size] if labels is not None else None
    out.append(g(z[i:i + batch_size], lab, training=False).numpy())
  return np.concatenate(out), (labels.numpy() if labels is not None else None)
