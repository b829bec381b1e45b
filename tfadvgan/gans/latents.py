"""Latent codes for sampling: truncation and interpolation paths.

* ``truncate(z, threshold, seed)``: the truncation trick (Brock et al., BigGAN, ICLR 2019): every
  entry with ``|z| > threshold`` is redrawn from the standard normal restricted to
  ``[-threshold, threshold]`` (by the inverse CDF, one draw, the same law as redrawing until the
  entry falls inside); the other entries are left as they are.
* ``interpolate(a, b, steps, method)``: ``steps`` points from ``a`` to ``b``, endpoints included.
  'slerp' (White, Sampling generative networks, 2016) follows the great circle between the
  directions of ``a`` and ``b``: ``sin((1-t) w) / sin w * a + sin(t w) / sin w * b`` with
  ``cos w = a.b / (|a| |b|)``; for equal norms the norm stays constant, where 'lerp' (the straight
  line) passes through codes of smaller norm than a Gaussian sample ever has.
"""
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import rng

INTERPOLATIONS = ("slerp", "lerp")


def truncate(z, threshold, seed):
  """``z`` with the entries ``|z| > threshold`` redrawn inside ``[-threshold, threshold]``.

  Args:
    z: ``[N, latent_dim]`` float tensor or array of standard normal codes.
    threshold: t > 0.
    seed: int; the redrawn entries use the stateless seed ``[seed, rng.TRUNCATION_Z]``.

  Returns:
    A float32 tensor of ``z``'s shape.
  """
  errors.check(threshold is not None and float(threshold) > 0,
               f"The truncation threshold must be > 0; got {threshold!r}.")
  z = tf.convert_to_tensor(z, tf.float32)
  t = tf.constant(float(threshold), tf.float64)
  u = tf.cast(rng.uniform(tf.shape(z), tf.constant([seed, rng.TRUNCATION_Z], tf.int32)),
              tf.float64)
  low = 0.5 * tf.math.erfc(t / np.sqrt(2.0))  # Phi(-t)
  redrawn = tf.math.ndtri(low + u * (1.0 - 2.0 * low))
  redrawn = tf.cast(tf.clip_by_value(redrawn, -t, t), tf.float32)
  return tf.where(tf.abs(z) > float(threshold), redrawn, z)


def slerp(a, b, t):
  """Spherical interpolation of two vectors at fractions ``t`` (``[T]``); returns ``[T, d]``."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  t = np.asarray(t, np.float64)[:, None]
  cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30)
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  if np.sin(omega) < 1e-7:  # (anti)parallel: no unique great circle
    return lerp(a, b, t[:, 0])
  return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def lerp(a, b, t):
  """Linear interpolation of two vectors at fractions ``t`` (``[T]``); returns ``[T, d]``."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  t = np.asarray(t, np.float64)[:, None]
  return (1 - t) * a + t * b


def interpolate(a, b, steps, method="slerp"):
  """``steps`` (>= 2) codes from ``a`` to ``b``, endpoints included, float32 ``[steps, d]``."""
  errors.check(method in INTERPOLATIONS, f"Unknown interpolation {method!r}; choose one of "
               f"{', '.join(INTERPOLATIONS)}.")
  errors.check(isinstance(steps, int) and steps >= 2,
               f"An interpolation needs at least 2 steps; got {steps!r}.")
  fn = slerp if method == "slerp" else lerp
  return fn(a, b, np.linspace(0.0, 1.0, steps)).astype(np.float32)
