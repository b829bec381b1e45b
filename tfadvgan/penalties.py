"""Discriminator regularisers: gradient penalties and WGAN weight clipping.

A penalty is ``penalty(d_fn, real, fake, *, seed=None, ...) -> [B]`` per-example values, where
``d_fn(x) -> [B]`` logits is a closure over D (labels, training flag). The caller applies the weight
(for ``r1`` that includes the conventional ``gamma / 2``) and reduces with
``tf.nn.compute_average_loss``. Input gradients are taken with an inner ``tf.GradientTape``, so when
a penalty is evaluated inside the caller's tape its value is differentiable w.r.t. D's weights
(double backprop), also under ``tf.function(jit_compile=True)``.

``d_fn`` is only ever called on ``[B, ...]`` batches (never on ``concat(real, fake)``), because it
closes over ``[B]`` labels. ``real`` and ``fake`` are treated as constants (``tf.stop_gradient``):
penalties regularise D only.

Penalties (``get(name)``):

- ``wgan_gp`` (Gulrajani et al. 2017): ``(||grad D(x_hat)||_2 - target)^2`` with
  ``x_hat = real + u (fake - real)``, ``u ~ U[0, 1)`` per example from
  ``rng.uniform([B, 1, ..., 1], seed)`` (stateless, identical with and without XLA).
- ``wgan_lp`` (Petzka et al. 2018, one-sided): ``max(0, ||grad D(x_hat)||_2 - target)^2`` at the
  same interpolates as ``wgan_gp``.
- ``r1`` (Mescheder et al. 2018, zero-centred GP on reals): ``||grad D(real)||_2^2``; ``fake`` is
  ignored.
- ``wgan_alp`` (Terjek 2019, adversarial Lipschitz penalty), reading recorded here:

  * evaluated on the real *and* the fake batch (the paper and official code use
    ``x in concat(real, fake)``); the per-example result is ``(alp(real_i) + alp(fake_i)) / 2`` so
    its mean over ``[B]`` equals the mean over the ``2B`` points;
  * ``d ~ N(0, I)`` normalised to unit L2 norm per example; ``num_power_iterations`` (default 1)
    times: ``d <- normalize(grad_d |D(x) - D(x + xi * d)|)`` with ``xi = 10``;
  * ``r = eps * d`` with ``eps ~ U[epsilon_range) = U[0.1, 10)`` sampled per example;
    ``r`` is a constant (``tf.stop_gradient``);
  * penalty ``max(0, |D(x) - D(x + r)| / ||r||_2 - K)^2`` with ``K = lipschitz_constant = 1``
    (one-sided, squared); both ``D(x)`` and ``D(x + r)`` carry gradients to D's weights;
  * the perturbed points ``x + r`` are *not* clipped to the image range (the Lipschitz ratio is
    measured along the exact ``r``).

Norms are L2 over all non-batch axes; a zero gradient gives a zero direction and a finite penalty
(no NaN from ``sqrt`` at 0). ``seed`` is a ``[2]`` int32 stateless seed; ``wgan_gp``, ``wgan_lp`` and
``wgan_alp`` require it. ``get(None)`` / ``get("none")`` return ``none`` (zeros).
"""
import numbers

import gin
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import tensor_ops
from tfadvgan.rng import normal, split_seed, uniform

def _per_example_shape(x):
  """``[B, 1, ..., 1]`` broadcastable against ``x``."""
  return tf.concat([tf.shape(x)[:1], tf.ones([x.shape.rank - 1], tf.int32)], axis=0)


def _safe_norm(g):
  """Per-example L2 norm over non-batch axes; gradient 0 (not NaN) where g == 0."""
  sq = tf.reduce_sum(tf.square(g), axis=tensor_ops.reduce_axes(g))
  return tf.sqrt(tf.maximum(sq, tf.cast(tensor_ops.TINY, g.dtype)))


def _require_seed(seed, name):
  errors.check(seed is not None,
               f"Penalty {name!r} is random: pass a stateless seed=[2] int32 tensor.")
  return tf.cast(seed, tf.int32)


def _is_static(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _dynamic(value):
  return isinstance(value, (tf.Tensor, tf.Variable))


def _check_target(binding, target):
  if not _dynamic(target):
    errors.check_float(f"{binding}.target", target, low=0)


def _check_alp(epsilon_range, xi, num_power_iterations, lipschitz_constant):
  """Checks wgan_alp's knobs (values that are tensors are the caller's business)."""
  name = "penalty_wgan_alp"
  errors.check_int(f"{name}.num_power_iterations", num_power_iterations, low=1)
  errors.check(isinstance(epsilon_range, (tuple, list)) and len(epsilon_range) == 2,
               f"{name}.epsilon_range must be a pair (min, max); got {epsilon_range!r}.")
  if not any(_dynamic(v) for v in epsilon_range):
    low = errors.check_float(f"{name}.epsilon_range[0]", epsilon_range[0], low=0,
                             low_inclusive=False)
    errors.check_float(f"{name}.epsilon_range[1]", epsilon_range[1], low=low,
                       hint="(max must be >= min)")
  if not _dynamic(xi):
    errors.check_float(f"{name}.xi", xi, low=0, low_inclusive=False)
  if not _dynamic(lipschitz_constant):
    errors.check_float(f"{name}.lipschitz_constant", lipschitz_constant, low=0)


def _input_grad(d_fn, x):
  """``d D(x) / dx`` per example, recorded so an outer tape can differentiate it again."""
  return tensor_ops.input_gradient(d_fn, x)[1]


def _interpolates(real, fake, seed):
  real = tf.stop_gradient(tf.convert_to_tensor(real))
  fake = tf.stop_gradient(tf.cast(fake, real.dtype))
  u = uniform(_per_example_shape(real), seed, real.dtype)
  return real + u * (fake - real)


def _interpolate_grad_norm(name, d_fn, real, fake, seed, target):
  """WGAN-GP's and WGAN-LP's common part: ``(||grad_x D(x_hat)||_2, target)`` at random
  interpolates ``x_hat``, after checking the penalty ``name``'s target and seed."""
  _check_target(f"penalty_{name}", target)
  seed = _require_seed(seed, name)
  x_hat = _interpolates(real, fake, seed)
  norm = _safe_norm(_input_grad(d_fn, x_hat))
  return norm, tf.cast(target, norm.dtype)


@gin.configurable("penalty_wgan_gp")
def wgan_gp(d_fn, real, fake, *, seed=None, target=1.0):
  """WGAN-GP: ``(||grad_x D(x_hat)||_2 - target)^2`` at random interpolates.

  Args:
    d_fn: ``x -> [B]`` logits.
    real: ``[B, ...]`` real batch.
    fake: ``[B, ...]`` fake batch.
    seed: ``[2]`` int32 stateless seed for ``u ~ U[0, 1)`` (shape ``[B, 1, ..., 1]``).
    target: the gradient norm the penalty pulls towards (1 in WGAN-GP).

  Returns:
    ``[B]`` penalties.
  """
  norm, target = _interpolate_grad_norm("wgan_gp", d_fn, real, fake, seed, target)
  return tf.square(norm - target)


@gin.configurable("penalty_wgan_lp")
def wgan_lp(d_fn, real, fake, *, seed=None, target=1.0):
  """WGAN-LP (one-sided): ``max(0, ||grad_x D(x_hat)||_2 - target)^2`` at random interpolates.

  Args:
    d_fn: ``x -> [B]`` logits.
    real: ``[B, ...]`` real batch.
    fake: ``[B, ...]`` fake batch.
    seed: ``[2]`` int32 stateless seed (same interpolates as ``wgan_gp`` for the same seed).
    target: the Lipschitz bound (1 in WGAN-LP).

  Returns:
    ``[B]`` penalties.
  """
  norm, target = _interpolate_grad_norm("wgan_lp", d_fn, real, fake, seed, target)
  return tf.square(tf.nn.relu(norm - target))


def r1(d_fn, real, fake=None, *, seed=None):
  """R1 / zero-centred gradient penalty on reals: ``||grad_x D(real)||_2^2``.

  The caller multiplies by ``gamma / 2``. ``fake`` and ``seed`` are accepted for a uniform
  signature and ignored.

  Args:
    d_fn: ``x -> [B]`` logits.
    real: ``[B, ...]`` real batch.
    fake: ignored.
    seed: ignored.

  Returns:
    ``[B]`` squared gradient norms.
  """
  del fake, seed
  real = tf.stop_gradient(tf.convert_to_tensor(real))
  g = _input_grad(d_fn, real)
  return tf.reduce_sum(tf.square(g), axis=tensor_ops.reduce_axes(g))


def alp_direction(d_fn, x, seed, *, xi=10.0, num_power_iterations=1, d_x=None):
  """Unit-L2 adversarial direction of ALP by power iteration (constant, no gradient).

  Args:
    d_fn: ``x -> [B]`` logits.
    x: ``[B, ...]`` points.
    seed: ``[2]`` int32 stateless seed for the random start.
    xi: finite-difference step of the power iteration.
    num_power_iterations: number of ``d <- normalize(grad_d |D(x) - D(x + xi d)|)`` steps.
    d_x: optional precomputed ``d_fn(x)`` (saves one forward pass; used as a constant).

  Returns:
    ``[B, ...]`` directions with unit L2 norm per example (zero where the gradient vanishes).
  """
  x = tf.stop_gradient(x)
  d_x = tf.stop_gradient(d_fn(x) if d_x is None else d_x)
  d = tensor_ops.normalize(normal(tf.shape(x), seed, x.dtype))
  for _ in range(num_power_iterations):
    with tf.GradientTape() as tape:
      tape.watch(d)
      total = tf.reduce_sum(tf.abs(d_x - d_fn(x + tf.cast(xi, x.dtype) * d)))
    g = tape.gradient(total, d, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    d = tensor_ops.normalize(tf.stop_gradient(g))
  return d


def _alp_one(d_fn, x, seed, epsilon_range, xi, num_power_iterations, lipschitz_constant):
  seeds = split_seed(seed)
  d_x = d_fn(x)
  direction = alp_direction(d_fn, x, seeds[0], xi=xi, num_power_iterations=num_power_iterations,
                            d_x=d_x)
  eps = uniform(_per_example_shape(x), seeds[1], x.dtype, epsilon_range[0], epsilon_range[1])
  r = tf.stop_gradient(eps * direction)
  ratio = tf.abs(d_x - d_fn(x + r)) / _safe_norm(r)
  return tf.square(tf.nn.relu(ratio - tf.cast(lipschitz_constant, ratio.dtype)))


@gin.configurable("penalty_wgan_alp")
def wgan_alp(d_fn, real, fake, *, seed=None, epsilon_range=(0.1, 10.0), xi=10.0,
             num_power_iterations=1, lipschitz_constant=1.0):
  """Adversarial Lipschitz penalty (Terjek 2019) on real and fake points.

  ``max(0, |D(x) - D(x + r)| / ||r||_2 - K)^2`` with ``r`` the (constant) adversarial perturbation
  found by power iteration; see the module docstring for every detail.

  Args:
    d_fn: ``x -> [B]`` logits.
    real: ``[B, ...]`` real batch.
    fake: ``[B, ...]`` fake batch.
    seed: ``[2]`` int32 stateless seed (random start and per-example ``eps``).
    epsilon_range: ``(min, max)`` of the per-example ``||r||_2 ~ U[min, max)``.
    xi: power-iteration finite-difference step.
    num_power_iterations: power-iteration steps (>= 1).
    lipschitz_constant: K, the one-sided bound on the ratio.

  Returns:
    ``[B]`` penalties ``(alp(real_i) + alp(fake_i)) / 2``.
  """
  seed = _require_seed(seed, "wgan_alp")
  _check_alp(epsilon_range, xi, num_power_iterations, lipschitz_constant)
  real = tf.stop_gradient(tf.convert_to_tensor(real))
  fake = tf.stop_gradient(tf.cast(fake, real.dtype))
  seeds = split_seed(seed)
  args = (epsilon_range, xi, num_power_iterations, lipschitz_constant)
  return 0.5 * (_alp_one(d_fn, real, seeds[0], *args) + _alp_one(d_fn, fake, seeds[1], *args))


def none(d_fn, real, fake=None, *, seed=None, **unused):
  """No penalty: zeros ``[B]`` (``d_fn`` is not called)."""
  del d_fn, fake, seed, unused
  real = tf.convert_to_tensor(real)
  return tf.zeros(tf.shape(real)[:1], dtype=real.dtype)


REGISTRY = {
    "wgan_gp": wgan_gp,
    "wgan_lp": wgan_lp,
    "r1": r1,
    "wgan_alp": wgan_alp,
    "none": none,
}


def check_bindings(penalty):
  """Checks the gin-bound arguments of ``penalty`` now (GAN construction), not at the first trace.

  Args:
    penalty: a function from ``get`` (others pass unchecked).

  Raises:
    ConfigError: a bound value is not finite or out of range (the message names the binding).
  """
  if penalty in (wgan_gp, wgan_lp):
    name = "penalty_wgan_gp" if penalty is wgan_gp else "penalty_wgan_lp"
    _check_target(name, errors.bound_kwargs(penalty)["target"])
  elif penalty is wgan_alp:
    kw = errors.bound_kwargs(wgan_alp)
    _check_alp(kw["epsilon_range"], kw["xi"], kw["num_power_iterations"], kw["lipschitz_constant"])


def get(name):
  """Returns the penalty function for ``name`` (``None`` and ``"none"`` give ``none``).

  Args:
    name: ``wgan_gp``, ``wgan_lp``, ``r1``, ``wgan_alp``, ``none``, ``None``, or a callable (passes
      through).

  Returns:
    ``penalty(d_fn, real, fake, *, seed=None, ...) -> [B]``.

  Raises:
    ConfigError: unknown name (the message lists the valid names).
  """
  if name is None:
    return none
  return errors.choose("penalty", name, REGISTRY)


def clip_weights(variables, clip_value):
  """WGAN weight clipping: assigns ``clip(v, -clip_value, clip_value)`` to every variable.

  A constraint applied after the D optimiser step (not a loss term).

  Args:
    variables: iterable of ``tf.Variable`` / ``keras.Variable``.
    clip_value: positive bound c (0.01 in WGAN).

  Returns:
    None.
  """
  if _is_static(clip_value):
    errors.check_float("GAN.clip_value", clip_value, low=0, low_inclusive=False)
  for v in variables:
    value = tf.convert_to_tensor(v)
    c = tf.cast(clip_value, value.dtype)
    v.assign(tf.clip_by_value(value, -c, c))
