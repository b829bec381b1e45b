"""Free adversarial training's perturbation (Shafahi et al.; Fast-RobGAN Alg. 2).

``free_delta_update`` is ``clip(delta + step_size * sign(grad_delta), -epsilon, epsilon)`` (Alg. 2
lines 8-9); ``free_delta_init`` draws the initial ``U(-epsilon, epsilon)`` (Alg. 2 line 1).
"""
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import tensor_ops
from tfadvgan.attacks import common
from tfadvgan.rng import normal, uniform

FREE_DELTA_INITS = ("uniform", "clamped_normal", "zeros")
FREE_DELTA_GRADIENTS = ("straight_through", "through_clip")


def free_delta_init(shape, epsilon, seed, dtype=tf.float32, kind="uniform"):
  """Initial free-AT perturbation: ``U(-epsilon, epsilon)`` (``kind="uniform"``, Fast-RobGAN Alg. 2
  line 1), ``clip(N(0, 1), -epsilon, epsilon)`` (``"clamped_normal"``, the release) or zeros (also
  whenever ``epsilon`` is 0)."""
  common.check_epsilon(epsilon, attack="FastRobGAN")
  errors.check(kind in FREE_DELTA_INITS, f"Unknown free-AT delta init {kind!r}. Choose one of: "
               f"{', '.join(FREE_DELTA_INITS)}.")
  if kind == "zeros" or epsilon == 0.0:
    return tf.zeros(shape, dtype)
  if kind == "uniform":
    return uniform(shape, seed, dtype, -1.0, 1.0) * tf.cast(epsilon, dtype)
  return tf.clip_by_value(normal(shape, seed, dtype), -epsilon, epsilon)


def free_adversarial_input(x, delta, clip=True, gradient="straight_through"):
  """What D sees in free AT: ``clip(x + delta, -1, 1)`` (or ``x + delta`` unclipped). With
  ``gradient="straight_through"`` (the release: it copies the clamped input into a leaf tensor)
  the gradient for ``delta`` is the gradient at the clipped input, so ``delta`` also moves where
  ``x + delta`` is clipped; ``"through_clip"`` differentiates the clip (zero gradient there)."""
  x_adv = x + delta
  if not clip:
    return x_adv
  if gradient == "through_clip":
    return tf.clip_by_value(x_adv, -1.0, 1.0)
  return tensor_ops.clip_straight_through(x_adv)


def free_delta_update(delta, grad_delta, step_size, epsilon):
  """Free adversarial training update: ``clip(delta + step_size * sign(grad), -eps, eps)``.

  Args:
    delta: ``[B, ...]`` current perturbation.
    grad_delta: ``[B, ...]`` gradient of the (increased) loss w.r.t. ``x + delta``.
    step_size: tau (>= 0).
    epsilon: L-inf bound (>= 0).

  Returns:
    ``[B, ...]`` updated perturbation (no gradient).
  """
  common.check_epsilon(epsilon, attack="FastRobGAN")
  common.check_epsilon(step_size, "step_size", "FastRobGAN")
  delta = tf.convert_to_tensor(delta)
  eps = tf.cast(epsilon, delta.dtype)
  new = delta + tf.cast(step_size, delta.dtype) * tf.sign(tf.cast(grad_delta, delta.dtype))
  return tf.stop_gradient(tf.clip_by_value(new, -eps, eps))


