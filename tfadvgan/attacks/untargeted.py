"""Attacks that increase a per-example loss: FGSM, PGD, and the random-direction ablation.

- ``fgsm``: ``x + epsilon * sign(g)`` (Goodfellow et al.; AS-GAN Eq. 7 is this with
  ``g = grad L_D = -grad V``). ``grad=`` takes a precomputed input gradient (AS-GAN reuses the one from
  the D update's tape) and then ``loss_fn`` may be ``None``. ``sign(0) = 0``: zero-gradient pixels
  stay put.
- ``pgd`` (Madry et al.; Rob-GAN): ``num_steps`` signed steps of ``step_size`` (``norm="linf"``), or
  L2-normalised steps (``norm="l2"``), each followed by projection onto the epsilon-ball and the
  range clip. ``random_start`` draws ``delta ~ U(-epsilon, epsilon)`` per pixel (Rob-GAN Alg. 1,
  line 5) for ``linf``, and ``epsilon * U[0, 1) * d / ||d||_2`` with ``d ~ N(0, I)`` per example for
  ``l2``. ``num_steps`` is a static int (Rob-GAN uses 5); the steps run in a ``tf.while_loop`` (not
  unrolled), so the graph size does not grow with ``num_steps``.
- ``gaussian`` (AS-GAN's random-direction ablation, Sec. 4 / Fig. 5): the same per-pixel L-inf budget
  as FGSM, ``delta = epsilon * sign(n)``, ``n ~ N(0, I)`` (``n >= 0`` maps to ``+epsilon``), so
  ``|delta| = epsilon`` exactly on every pixel before the range clip.
"""
import gin
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import tensor_ops
from tfadvgan.attacks import common
from tfadvgan.rng import normal, split_seed, uniform

NORMS = ("linf", "l2")


def _project(delta, epsilon, norm):
  if norm == "linf":
    return tf.clip_by_value(delta, -epsilon, epsilon)
  sq = tf.reduce_sum(tf.square(delta), axis=tensor_ops.reduce_axes(delta), keepdims=True)
  norm_ = tf.sqrt(tf.maximum(sq, tf.cast(tensor_ops.TINY, delta.dtype)))
  return delta * tf.minimum(tf.ones_like(norm_), epsilon / norm_)


@gin.configurable("attack_fgsm")
def fgsm(x, loss_fn, epsilon, clip_min=-1.0, clip_max=1.0, clip=True, grad=None):
  """Fast gradient sign method: ``x + epsilon * sign(grad_x sum(loss_fn(x)))``.

  Args:
    x: ``[B, ...]`` float inputs.
    loss_fn: ``x -> [B]`` per-example loss to increase; may be ``None`` when ``grad`` is given.
    epsilon: L-inf budget (>= 0; Python number or scalar tensor).
    clip_min: lower end of the valid input range.
    clip_max: upper end of the valid input range.
    clip: clip the result to ``[clip_min, clip_max]``.
    grad: optional precomputed ``d loss / d x`` (``[B, ...]``), used instead of calling ``loss_fn``.

  Returns:
    ``[B, ...]`` adversarial inputs (perturbation is a constant).
  """
  common.check_epsilon(epsilon, attack="attack_fgsm")
  common.check_range("attack_fgsm", clip_min, clip_max)
  x = tf.convert_to_tensor(x)
  if grad is None:
    errors.check(loss_fn is not None, "fgsm needs loss_fn or a precomputed grad=.")
    grad = common.input_grad(loss_fn, x)
  grad = tf.stop_gradient(tf.cast(grad, x.dtype))
  delta = tf.cast(epsilon, x.dtype) * tf.sign(grad)
  return common.finish(x, x + delta, clip, clip_min, clip_max)


def default_pgd_step_size(epsilon, num_steps):
  """The PGD step size when none is given: ``2.5 * epsilon / num_steps`` (Madry et al., 2018),
  so that the steps can cross the epsilon ball and back. `epsilon` may be a tensor."""
  return 2.5 * epsilon / num_steps


def _check_pgd(loss_fn, epsilon, num_steps, step_size, norm, clip_min, clip_max):
  """Checks PGD's static knobs; returns `num_steps` as an int."""
  common.check_epsilon(epsilon, attack="attack_pgd")
  common.check_epsilon(step_size, "step_size", "attack_pgd")
  common.check_range("attack_pgd", clip_min, clip_max)
  num_steps = errors.check_int("attack_pgd.num_steps", num_steps, low=1)
  errors.check(norm in NORMS, f"pgd norm must be one of {', '.join(NORMS)}; got {norm!r}.")
  errors.check(loss_fn is not None, "pgd needs a loss_fn.")
  return num_steps


def _random_start(x, eps, seed, norm):
  """PGD's random start: a uniform draw in the epsilon-ball (a box for ``linf``)."""
  errors.check(seed is not None, "pgd random_start=True needs a stateless seed=[2] int32 tensor.")
  seed = tf.cast(seed, tf.int32)
  if norm == "linf":
    return uniform(tf.shape(x), seed, x.dtype, -1.0, 1.0) * eps
  seeds = split_seed(seed)
  direction = tensor_ops.normalize(normal(tf.shape(x), seeds[0], x.dtype))
  radius = uniform(
      tf.concat([tf.shape(x)[:1], tf.ones([x.shape.rank - 1], tf.int32)], 0), seeds[1], x.dtype)
  return eps * radius * direction


@gin.configurable("attack_pgd")
def pgd(x, loss_fn, epsilon, num_steps, step_size, random_start=False, seed=None, clip=True,
        norm="linf", clip_min=-1.0, clip_max=1.0):
  """Projected gradient ascent on ``sum(loss_fn(x_adv))`` within the epsilon-ball around ``x``.

  Args:
    x: ``[B, ...]`` float inputs.
    loss_fn: ``x -> [B]`` per-example loss to increase.
    epsilon: ball radius (>= 0), L-inf or L2 per ``norm``.
    num_steps: number of ascent steps (static int >= 1).
    step_size: step length (>= 0): per-pixel for ``linf``, L2 length for ``l2``.
    random_start: start from a uniform random point in the ball (needs ``seed``).
    seed: ``[2]`` int32 stateless seed for the random start.
    clip: clip to ``[clip_min, clip_max]`` after the start and every step.
    norm: ``"linf"`` (signed steps, box projection) or ``"l2"`` (normalised steps, ball projection).
    clip_min: lower end of the valid input range.
    clip_max: upper end of the valid input range.

  Returns:
    ``[B, ...]`` adversarial inputs (perturbation is a constant).
  """
  num_steps = _check_pgd(loss_fn, epsilon, num_steps, step_size, norm, clip_min, clip_max)
  x_in = tf.convert_to_tensor(x)
  x = tf.stop_gradient(x_in)
  eps = tf.cast(epsilon, x.dtype)
  alpha = tf.cast(step_size, x.dtype)
  lo, hi = tf.cast(clip_min, x.dtype), tf.cast(clip_max, x.dtype)

  def to_range(v):
    return tf.clip_by_value(v, lo, hi) if clip else v

  x_adv = to_range(x + _random_start(x, eps, seed, norm)) if random_start else x

  def body(i, x_adv):
    g = common.input_grad(loss_fn, x_adv)
    step = tf.sign(g) if norm == "linf" else tensor_ops.normalize(g)
    delta = _project(x_adv + alpha * step - x, eps, norm)
    return i + 1, to_range(x + delta)

  if num_steps == 1:
    _, x_adv = body(0, x_adv)
  else:
    _, x_adv = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), x_adv),
                             maximum_iterations=num_steps)
  return common.finish(x_in, x_adv, False, clip_min, clip_max)


@gin.configurable("attack_gaussian")
def gaussian(x, epsilon, seed, clip=True, clip_min=-1.0, clip_max=1.0):
  """Random-direction ablation with FGSM's budget: ``x + epsilon * sign(n)``, ``n ~ N(0, I)``.

  Args:
    x: ``[B, ...]`` float inputs.
    epsilon: per-pixel magnitude (>= 0); ``|delta| = epsilon`` exactly before the range clip.
    seed: ``[2]`` int32 stateless seed.
    clip: clip the result to ``[clip_min, clip_max]``.
    clip_min: lower end of the valid input range.
    clip_max: upper end of the valid input range.

  Returns:
    ``[B, ...]`` randomly perturbed inputs (perturbation is a constant).
  """
  common.check_epsilon(epsilon, attack="attack_gaussian")
  common.check_range("attack_gaussian", clip_min, clip_max)
  errors.check(seed is not None, "gaussian attack needs a stateless seed=[2] int32 tensor.")
  x = tf.convert_to_tensor(x)
  n = normal(tf.shape(x), seed, x.dtype)
  eps = tf.cast(epsilon, x.dtype)
  delta = tf.where(n >= 0, eps, -eps)
  return common.finish(x, x + delta, clip, clip_min, clip_max)
