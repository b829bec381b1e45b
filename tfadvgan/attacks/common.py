"""What every attack shares: the checks of static knobs, the input gradient and the finish."""
import numbers

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import tensor_ops


def is_static_number(value):
  return isinstance(value, (numbers.Real, np.ndarray, np.generic)) and np.ndim(value) == 0


def check_epsilon(epsilon, what="epsilon", attack="attack"):
  """A static epsilon / step size must be a finite number >= 0 (tensors are the caller's)."""
  if is_static_number(epsilon):
    errors.check_float(f"{attack}.{what}", epsilon, low=0)


def check_range(attack, clip_min, clip_max):
  """Static clip bounds must be finite with clip_min < clip_max."""
  if is_static_number(clip_min) and is_static_number(clip_max):
    low = errors.check_float(f"{attack}.clip_min", clip_min)
    high = errors.check_float(f"{attack}.clip_max", clip_max)
    errors.check(low < high, f"{attack}.clip_min must be below {attack}.clip_max; got clip_min = "
                 f"{clip_min!r}, clip_max = {clip_max!r}.")


def input_grad(loss_fn, x):
  """The attack's input gradient, a constant (no second-order path through the attack)."""
  return tf.stop_gradient(tensor_ops.input_gradient(loss_fn, x)[1])


def finish(x, x_adv, clip, clip_min, clip_max):
  """``x + stop_gradient(x_adv - x)``, range-clipped if ``clip``."""
  if clip:
    x_adv = tf.clip_by_value(x_adv, tf.cast(clip_min, x.dtype), tf.cast(clip_max, x.dtype))
  return x + tf.stop_gradient(x_adv - x)
