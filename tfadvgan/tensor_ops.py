"""Small tensor helpers shared by attacks, penalties, diagnostics and the methods (one copy of
each)."""

import tensorflow as tf

TINY = 1e-12  # floor under squared norms: a zero gradient gives a zero direction, not NaN


def reduce_axes(x):
  """Every axis but the batch axis."""
  return list(range(1, x.shape.rank))


def normalize(g):
  """Per-example unit-L2 direction over non-batch axes; zero where g == 0."""
  sq = tf.reduce_sum(tf.square(g), axis=reduce_axes(g), keepdims=True)
  return g * tf.math.rsqrt(tf.maximum(sq, tf.cast(TINY, g.dtype)))


def input_gradient(fn, x):
  """``(fn(x), d sum(fn(x)) / dx)``: per-example input gradients when each output depends only on
  its own input. The gradient is recorded, so an outer tape can differentiate it again (gradient
  penalties); callers that want a constant wrap it in ``tf.stop_gradient``."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    value = fn(x)
    total = tf.reduce_sum(value)
  return value, tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


@tf.custom_gradient
def clip_straight_through(x):
  """clip(x, -1, 1) in the forward pass; the identity's gradient in the backward pass."""
  return tf.clip_by_value(x, -1.0, 1.0), lambda upstream: upstream
