"""DAT's targeted attack (Eqs. 9-10): one step that moves each value towards a target.

``targeted_one_step`` *decreases* ``|value_fn(x) - target|``. ``direction="raw"`` is the paper's
literal ``delta = -epsilon * grad``; it is then clipped to ``[-epsilon, epsilon]`` per pixel so
``||delta||_inf <= epsilon`` (the paper leaves it unbounded; at ``epsilon = 1`` this is the DAT
release's ``x - grad.clamp(-1, 1)``). ``"sign"`` (default) is the FGSM-style step of Eq. 6
(``|delta| = epsilon`` where the gradient is non-zero); ``"l2"`` is ``-epsilon * g / ||g||_2`` per
example. ``target`` is a constant. The gradient is that of ``targeted_gap``: per example,
``sum_i |v_i - target|`` (Eqs. 9-10), or the release's batch mean, ``|mean_i v_i - target|`` (one
common sign, and a 1/m on every example).
"""
import gin
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import tensor_ops
from tfadvgan.attacks import common

DIRECTIONS = ("sign", "raw", "l2")
OBJECTIVES = ("per_example", "batch_mean")


def targeted_gap(values, target, objective="per_example", mean=None):
  """The scalar whose input gradient is the targeted attack's (DAT Eqs. 9-10, or its release).

  Args:
    values: ``[B]`` attacked values v_i (e.g. ``g1(D(x_r))``), differentiable in the inputs.
    target: scalar or ``[B]`` target (a constant).
    objective: ``"per_example"`` (``sum_i |v_i - target|``, Eq. 9) or ``"batch_mean"`` (the
      release's ``|mean v - target|`` over the global batch).
    mean: ``"batch_mean"`` only: the global batch's mean of ``values`` (a constant; it gives the
      common sign).

  Returns:
    A scalar. For ``"batch_mean"``, ``sign(mean - target) * sum(values) / M`` with M the global
    batch size (``tf.nn.compute_average_loss``, as the D loss): each replica's input gradient is
    its rows of the gradient of ``|mean v - target|`` over the global batch.
  """
  errors.check(objective in OBJECTIVES, f"targeted attack objective must be one of "
               f"{', '.join(OBJECTIVES)}; got {objective!r}.")
  target = tf.stop_gradient(tf.cast(target, values.dtype))
  if objective == "per_example":
    return tf.reduce_sum(tf.abs(values - target))
  errors.check(mean is not None, "targeted_gap objective='batch_mean' needs the global mean.")
  sign = tf.stop_gradient(tf.sign(tf.cast(mean, values.dtype) - target))
  return sign * tf.nn.compute_average_loss(values)


@gin.configurable("attack_targeted_one_step")
def targeted_one_step(x, value_fn, target, epsilon, direction="sign", clip=True, clip_min=-1.0,
                      clip_max=1.0, grad=None, objective="per_example", mean=None):
  """DAT Eqs. 9-10: one step ``delta = -epsilon * direction(grad_x targeted_gap(value_fn(x), target))``.

  Moves each example's value towards ``target`` (e.g. ``value_fn = g1(D(.))`` on reals with
  ``target`` the batch mean of ``g1`` on fakes, per the DAT reading chosen by the caller).

  Args:
    x: ``[B, ...]`` float inputs.
    value_fn: ``x -> [B]`` per-example value.
    target: scalar or ``[B]`` target value (treated as a constant).
    epsilon: L-inf budget (>= 0).
    direction: ``"sign"`` (``|delta| = epsilon``), ``"raw"`` (paper's ``-epsilon * grad``, clipped to
      ``[-epsilon, epsilon]``) or ``"l2"`` (``||delta||_2 = epsilon`` per example).
    clip: clip the result to ``[clip_min, clip_max]``.
    clip_min: lower end of the valid input range.
    clip_max: upper end of the valid input range.
    grad: optional precomputed input gradient of ``targeted_gap`` (``[B, ...]``), used instead
      of a fresh pass through ``value_fn`` (which may then be ``None``).
    objective: ``targeted_gap``'s objective, ``"per_example"`` or ``"batch_mean"``.
    mean: ``"batch_mean"``: the global mean of ``value_fn(x)``.

  Returns:
    ``[B, ...]`` perturbed inputs with ``||x_adv - x||_inf <= epsilon`` (perturbation is a constant).
  """
  common.check_epsilon(epsilon, attack="attack_targeted_one_step")
  common.check_range("attack_targeted_one_step", clip_min, clip_max)
  errors.check(direction in DIRECTIONS,
               f"targeted_one_step direction must be one of {', '.join(DIRECTIONS)}; "
               f"got {direction!r}.")
  x = tf.convert_to_tensor(x)
  if grad is None:
    errors.check(value_fn is not None, "targeted_one_step needs value_fn or a precomputed grad=.")
    g = common.input_grad(lambda v: targeted_gap(value_fn(v), target, objective, mean), x)
  else:
    g = tf.stop_gradient(tf.cast(grad, x.dtype))
  eps = tf.cast(epsilon, x.dtype)
  if direction == "sign":
    delta = -eps * tf.sign(g)
  elif direction == "raw":
    delta = tf.clip_by_value(-eps * g, -eps, eps)
  else:
    delta = -eps * tensor_ops.normalize(g)
  return common.finish(x, x + delta, clip, clip_min, clip_max)


