"""Input-space attacks on the discriminator, as pure functions compiled inside the train step.

Convention: ``attack(x, loss_fn, epsilon, ...) -> x_adv`` where ``loss_fn(x) -> [B]`` is a
per-example loss the attack *increases*. Input gradients come from a tape on
``tf.reduce_sum(loss_fn(x))``, so each example's gradient is independent of the batch size (no
``1/B`` from a mean). Randomness only from explicit stateless ``seed`` tensors (``[2]`` int32).

Choices (the papers' readings behind them are in docs/readings/):

- The returned perturbation is a constant: ``x_adv = clip(x + tf.stop_gradient(delta))``; gradients
  still flow to ``x`` itself (identity, through the range clip).
- ``clip=True`` (default) clips ``x_adv`` to ``[clip_min, clip_max] = [-1, 1]`` (the image range).
  Turn it off for unbounded data (2-D toy sets). Because clean ``x`` lies in the range, the range
  clip never pushes ``x_adv`` outside the epsilon-ball.
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
- ``targeted_one_step`` (DAT Eqs. 9-10): one step that *decreases* ``|value_fn(x) - target|``.
  ``step="raw"`` is the paper's literal ``delta = -epsilon * grad``; it is then clipped to
  ``[-epsilon, epsilon]`` per pixel so ``||delta||_inf <= epsilon`` (the paper leaves it unbounded;
  at ``epsilon = 1`` this is the DAT release's ``x - grad.clamp(-1, 1)``).
  ``"sign"`` (default) is the FGSM-style step of Eq. 6 (``|delta| = epsilon`` where the gradient is
  non-zero); ``"l2"`` is ``-epsilon * g / ||g||_2`` per example. ``target`` is a constant. The
  gradient is that of ``targeted_gap``: per example, ``sum_i |v_i - target|`` (Eqs. 9-10), or the
  release's batch mean, ``|mean_i v_i - target|`` (one common sign, and a 1/m on every example).
- ``free_delta_update``: free adversarial training (Shafahi et al.; Fast-RobGAN Alg. 2 lines 8-9):
  ``clip(delta + step_size * sign(grad_delta), -epsilon, epsilon)``; ``free_delta_init`` draws the
  initial ``U(-epsilon, epsilon)`` (Alg. 2 line 1).

Random numbers come from ``tfadvgan.rng`` (``uniform`` / ``normal``): Philox bits from
``tf.random.stateless_uniform(dtype=uint32, alg="philox")`` turned into floats by our own arithmetic
(24-bit uniforms; Box-Muller normals). TF's float stateless kernels give *different* numbers under
``jit_compile=True`` than in eager/graph mode on the same seed; the integer bits agree, so these
helpers give identical noise with and without XLA. ``split_seed`` replaces
``tf.random.experimental.stateless_split``, which also disagrees under XLA for seeds with negative
entries. A seed is either split or drawn from, never both.

``get(name)`` returns ``fgsm``, ``pgd``, ``gaussian`` or ``none`` wrapped to one calling convention
``attack(x, loss_fn, epsilon, **kwargs)``; keyword arguments that belong to another attack (``seed``,
``grad``, ``num_steps``, ``step_size``, ``random_start``, ``norm``) are ignored, any other unknown
keyword raises ConfigError.
"""
import numbers

import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import ops
from tfadvgan.rng import normal, split_seed, uniform

NORMS = ("linf", "l2")
STEPS = ("sign", "raw", "l2")
OBJECTIVES = ("per_example", "batch_mean")


def _is_static_number(value):
  return isinstance(value, (numbers.Real, np.ndarray, np.generic)) and np.ndim(value) == 0


def _check_epsilon(epsilon, what="epsilon", attack="attack"):
  """A static epsilon / step size must be a finite number >= 0 (tensors are the caller's)."""
  if _is_static_number(epsilon):
    errors.check_float(f"{attack}.{what}", epsilon, low=0)


def _check_range(attack, clip_min, clip_max):
  """Static clip bounds must be finite with clip_min < clip_max."""
  if _is_static_number(clip_min) and _is_static_number(clip_max):
    low = errors.check_float(f"{attack}.clip_min", clip_min)
    high = errors.check_float(f"{attack}.clip_max", clip_max)
    errors.check(low < high, f"{attack}.clip_min must be below {attack}.clip_max; got clip_min = "
                 f"{clip_min!r}, clip_max = {clip_max!r}.")


_BINDING = {"fgsm": "attack_fgsm", "pgd": "attack_pgd", "gaussian": "attack_gaussian",
            "targeted_one_step": "attack_targeted_one_step"}


def check_bindings(name):
  """Checks the gin-bound knobs of attack ``name`` now (GAN construction), not at the first trace.

  Args:
    name: ``fgsm``, ``pgd``, ``gaussian``, ``targeted_one_step`` (others pass unchecked).

  Raises:
    ConfigError: a bound value is not finite or out of range (the message names the binding).
  """
  binding = _BINDING.get(name)
  if binding is None:
    return
  fn = {"fgsm": fgsm, "pgd": pgd, "gaussian": gaussian,
        "targeted_one_step": targeted_one_step}[name]
  kw = errors.bound_kwargs(fn)
  _check_range(binding, kw["clip_min"], kw["clip_max"])
  for what in ("epsilon", "step_size"):
    if what in kw:
      _check_epsilon(kw[what], what, binding)
  if "norm" in kw:
    errors.check(kw["norm"] in NORMS,
                 f"{binding}.norm must be one of {', '.join(NORMS)}; got {kw['norm']!r}.")


def _input_grad(loss_fn, x):
  """The attack's input gradient, a constant (no second-order path through the attack)."""
  return tf.stop_gradient(ops.input_gradient(loss_fn, x)[1])


def _finish(x, x_adv, clip, clip_min, clip_max):
  """``x + stop_gradient(x_adv - x)``, range-clipped if ``clip``."""
  if clip:
    x_adv = tf.clip_by_value(x_adv, tf.cast(clip_min, x.dtype), tf.cast(clip_max, x.dtype))
  return x + tf.stop_gradient(x_adv - x)


def _project(delta, epsilon, norm):
  if norm == "linf":
    return tf.clip_by_value(delta, -epsilon, epsilon)
  sq = tf.reduce_sum(tf.square(delta), axis=ops.reduce_axes(delta), keepdims=True)
  norm_ = tf.sqrt(tf.maximum(sq, tf.cast(ops.TINY, delta.dtype)))
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
  _check_epsilon(epsilon, attack="attack_fgsm")
  _check_range("attack_fgsm", clip_min, clip_max)
  x = tf.convert_to_tensor(x)
  if grad is None:
    errors.check(loss_fn is not None, "fgsm needs loss_fn or a precomputed grad=.")
    grad = _input_grad(loss_fn, x)
  grad = tf.stop_gradient(tf.cast(grad, x.dtype))
  delta = tf.cast(epsilon, x.dtype) * tf.sign(grad)
  return _finish(x, x + delta, clip, clip_min, clip_max)


def default_pgd_step_size(epsilon, num_steps):
  """The PGD step size when none is given: ``2.5 * epsilon / num_steps`` (Madry et al., 2018),
  so that the steps can cross the epsilon ball and back. `epsilon` may be a tensor."""
  return 2.5 * epsilon / num_steps


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
  _check_epsilon(epsilon, attack="attack_pgd")
  _check_epsilon(step_size, "step_size", "attack_pgd")
  _check_range("attack_pgd", clip_min, clip_max)
  errors.check(isinstance(num_steps, numbers.Integral) and not isinstance(num_steps, bool)
               and num_steps >= 1, f"pgd num_steps must be an int >= 1; got {num_steps!r}.")
  errors.check(norm in NORMS, f"pgd norm must be one of {', '.join(NORMS)}; got {norm!r}.")
  errors.check(loss_fn is not None, "pgd needs a loss_fn.")
  x_in = tf.convert_to_tensor(x)
  x = tf.stop_gradient(x_in)
  eps = tf.cast(epsilon, x.dtype)
  alpha = tf.cast(step_size, x.dtype)
  lo, hi = tf.cast(clip_min, x.dtype), tf.cast(clip_max, x.dtype)

  def to_range(v):
    return tf.clip_by_value(v, lo, hi) if clip else v

  if random_start:
    errors.check(seed is not None, "pgd random_start=True needs a stateless seed=[2] int32 tensor.")
    seed = tf.cast(seed, tf.int32)
    if norm == "linf":
      delta = uniform(tf.shape(x), seed, x.dtype, -1.0, 1.0) * eps
    else:
      seeds = split_seed(seed)
      direction = ops.normalize(normal(tf.shape(x), seeds[0], x.dtype))
      radius = uniform(
          tf.concat([tf.shape(x)[:1], tf.ones([x.shape.rank - 1], tf.int32)], 0), seeds[1],
          x.dtype)
      delta = eps * radius * direction
    x_adv = to_range(x + delta)
  else:
    x_adv = x

  def body(i, x_adv):
    g = _input_grad(loss_fn, x_adv)
    step = tf.sign(g) if norm == "linf" else ops.normalize(g)
    delta = _project(x_adv + alpha * step - x, eps, norm)
    return i + 1, to_range(x + delta)

  if num_steps == 1:
    _, x_adv = body(0, x_adv)
  else:
    _, x_adv = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), x_adv),
                             maximum_iterations=num_steps)
  return _finish(x_in, x_adv, False, clip_min, clip_max)


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
  _check_epsilon(epsilon, attack="attack_gaussian")
  _check_range("attack_gaussian", clip_min, clip_max)
  errors.check(seed is not None, "gaussian attack needs a stateless seed=[2] int32 tensor.")
  x = tf.convert_to_tensor(x)
  n = normal(tf.shape(x), seed, x.dtype)
  eps = tf.cast(epsilon, x.dtype)
  delta = tf.where(n >= 0, eps, -eps)
  return _finish(x, x + delta, clip, clip_min, clip_max)


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
def targeted_one_step(x, value_fn, target, epsilon, step="sign", clip=True, clip_min=-1.0,
                      clip_max=1.0, grad=None, objective="per_example", mean=None):
  """DAT Eqs. 9-10: one step ``delta = -epsilon * step(grad_x targeted_gap(value_fn(x), target))``.

  Moves each example's value towards ``target`` (e.g. ``value_fn = g1(D(.))`` on reals with
  ``target`` the batch mean of ``g1`` on fakes, per the DAT reading chosen by the caller).

  Args:
    x: ``[B, ...]`` float inputs.
    value_fn: ``x -> [B]`` per-example value.
    target: scalar or ``[B]`` target value (treated as a constant).
    epsilon: L-inf budget (>= 0).
    step: ``"sign"`` (``|delta| = epsilon``), ``"raw"`` (paper's ``-epsilon * grad``, clipped to
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
  _check_epsilon(epsilon, attack="attack_targeted_one_step")
  _check_range("attack_targeted_one_step", clip_min, clip_max)
  errors.check(step in STEPS,
               f"targeted_one_step step must be one of {', '.join(STEPS)}; got {step!r}.")
  x = tf.convert_to_tensor(x)
  if grad is None:
    errors.check(value_fn is not None, "targeted_one_step needs value_fn or a precomputed grad=.")
    g = _input_grad(lambda v: targeted_gap(value_fn(v), target, objective, mean), x)
  else:
    g = tf.stop_gradient(tf.cast(grad, x.dtype))
  eps = tf.cast(epsilon, x.dtype)
  if step == "sign":
    delta = -eps * tf.sign(g)
  elif step == "raw":
    delta = tf.clip_by_value(-eps * g, -eps, eps)
  else:
    delta = -eps * ops.normalize(g)
  return _finish(x, x + delta, clip, clip_min, clip_max)


FREE_DELTA_INITS = ("uniform", "clamped_normal", "zeros")
FREE_DELTA_GRADIENTS = ("straight_through", "through_clip")


def free_delta_init(shape, epsilon, seed, dtype=tf.float32, kind="uniform"):
  """Initial free-AT perturbation: ``U(-epsilon, epsilon)`` (``kind="uniform"``, Fast-RobGAN Alg. 2
  line 1), ``clip(N(0, 1), -epsilon, epsilon)`` (``"clamped_normal"``, the release) or zeros (also
  whenever ``epsilon`` is 0)."""
  _check_epsilon(epsilon, attack="FastRobGAN")
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
  return ops.clip_straight_through(x_adv)


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
  _check_epsilon(epsilon, attack="FastRobGAN")
  _check_epsilon(step_size, "step_size", "FastRobGAN")
  delta = tf.convert_to_tensor(delta)
  eps = tf.cast(epsilon, delta.dtype)
  new = delta + tf.cast(step_size, delta.dtype) * tf.sign(tf.cast(grad_delta, delta.dtype))
  return tf.stop_gradient(tf.clip_by_value(new, -eps, eps))


def none(x, loss_fn=None, epsilon=0.0, **unused):
  """No attack: returns ``x`` unchanged."""
  del loss_fn, epsilon, unused
  return tf.convert_to_tensor(x)


_SHARED_KWARGS = {"seed", "grad", "num_steps", "step_size", "random_start", "norm", "clip",
                  "clip_min", "clip_max"}


def _adapter(name, fn, accepted):
  """Wraps ``fn`` as ``attack(x, loss_fn, epsilon, **kwargs)`` keeping only ``accepted`` kwargs."""

  def attack(x, loss_fn, epsilon, **kwargs):
    unknown = set(kwargs) - _SHARED_KWARGS
    errors.check(not unknown, f"Attack {name!r} got unknown arguments {sorted(unknown)}; valid: "
                 f"{', '.join(sorted(_SHARED_KWARGS))}.")
    kept = {k: v for k, v in kwargs.items() if k in accepted}
    if name == "gaussian":
      return fn(x, epsilon, **kept)
    return fn(x, loss_fn, epsilon, **kept)

  attack.__name__ = f"{name}_attack"
  attack.__doc__ = f"``{name}`` in the shared convention ``attack(x, loss_fn, epsilon, **kwargs)``."
  return attack


_CLIP = {"clip", "clip_min", "clip_max"}
REGISTRY = {
    "fgsm": _adapter("fgsm", fgsm, _CLIP | {"grad"}),
    "pgd": _adapter("pgd", pgd, _CLIP | {"num_steps", "step_size", "random_start", "seed",
                                         "norm"}),
    "gaussian": _adapter("gaussian", gaussian, _CLIP | {"seed"}),
    "none": _adapter("none", none, set()),
}


def get(name):
  """Returns the attack for ``name`` in the shared convention (``None`` gives ``none``).

  Args:
    name: ``fgsm``, ``pgd``, ``gaussian``, ``none``, ``None``, or a callable (passes through).

  Returns:
    ``attack(x, loss_fn, epsilon, **kwargs) -> x_adv``; see the module docstring.

  Raises:
    ConfigError: unknown name (the message lists the valid names).
  """
  if name is None:
    return REGISTRY["none"]
  return errors.choose("attack", name, REGISTRY)
