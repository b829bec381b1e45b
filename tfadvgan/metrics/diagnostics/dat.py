"""DAT diagnostics: how many targeted steps make D confuse fakes with reals (Eq. 1, Fig. 1), whether
the first-order expansion of Eqs. 11-13 holds for DAT's own step, and the Wasserstein estimate of
Figs. 4-7. Which methods these apply to is decided here (``measures_attack_success``), not by the
method classes.

Readings and decisions (also in docs/evaluation.md, "Evaluation: decisions"):

- **DAT xi (Eq. 1, Fig. 1).** An attack on a fake succeeds when ``|D(x_f_adv) - mean D(x_r)| <=
  tolerance`` (0.02), on a real when ``|D(x_r_adv) - mean D(x_f)| <= tolerance``. We read "D(x_r)"
  in Eq. 1 as the mean over the real set (the paper's Eq. 9 uses the batch mean, and a per-example
  pairing is not described). Each attack iteration is ``attacks.targeted_one_step`` (size
  ``step_size``, sign step by default, i.e. Eq. 6 targeted) towards that constant target, with no
  epsilon-ball projection (Fig. 1 attacks until success), clipped to the image range. An example's
  count is the number of steps taken before it first succeeds (0 if it already does); examples stop
  moving once they succeed; the loop stops at ``max_iters`` steps. ``xi_*`` is the mean count with
  failures counted as ``max_iters``; ``xi_*_successful`` is the mean over successful examples only
  (the paper's "average number of attacks when ... successfully attacked" is closest to this one)
  and ``fail_*`` the fraction that never succeeded. ``value`` chooses what "D" is: ``"logit"`` (the
  raw output, default), ``"probability"`` (sigmoid, the DCGAN output the paper's 0.02 tolerance
  probably refers to), or ``"loss"``: Eq. 9's ``g1`` on reals / ``g2`` on fakes of ``loss``
  (targets ``mean g1(D(x_f))`` / ``mean g2(D(x_r))``; Algorithm 1 lines 6-7 swap g1 and g2, Eq. 9
  is followed). A fixed step can oscillate around the target without entering the tolerance band
  (sign steps move a linear D by ``step_size * ||w||_1`` per iteration); those count as failures.
- **Wasserstein estimate**: ``mean D(x_r) - mean D(x_f)`` on raw logits (DAT Figs. 4-7).
"""
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan import losses as losses_lib
from tfadvgan import tensor_ops
from tfadvgan.gans import dat as dat_method
from tfadvgan.metrics.diagnostics import batching

DAT_VALUES = ("logit", "probability", "loss")
# The attack whose first-order expansion is checked on runs of other methods.
FIRST_ORDER_EPSILON = 0.01
FIRST_ORDER_DIRECTION = "sign"


def measures_attack_success(gan):
  """Whether the periodic diagnostics of ``gan``'s training also measure its targeted attack's
  success (DAT's xi_fake / xi_real): for DAT runs."""
  return isinstance(gan, dat_method.DAT)


def first_order_attack(gan):
  """``(epsilon, direction)`` of the attack whose Eqs. 11-13 expansion is checked: a DAT run's own,
  else ``FIRST_ORDER_EPSILON`` with sign steps."""
  if measures_attack_success(gan):
    return gan.epsilon, gan.direction
  return FIRST_ORDER_EPSILON, FIRST_ORDER_DIRECTION


def _dat_value(value, loss, real):
  """``t -> value`` for the DAT success test; ``real`` selects g1 (reals) or g2 (fakes)."""
  errors.check(value in DAT_VALUES,
               f"dat value must be one of {', '.join(DAT_VALUES)}; got {value!r}.")
  if value == "logit":
    return tf.identity
  if value == "probability":
    return tf.sigmoid
  errors.check(loss is not None, "dat_attack_success value='loss' needs the GAN's loss (g1, g2).")
  loss = losses_lib.get(loss)
  return loss.g1 if real else loss.g2


def _check_direction(direction):
  errors.check(direction in attacks.DIRECTIONS,
               f"direction must be one of {', '.join(attacks.DIRECTIONS)}; got {direction!r}.")


def _make_steps_to_success(d_fn, value_t, tolerance, max_iters, step_size, direction, clip):
  """A compiled ``run(x, labels, target) -> {"steps": [B] int32}``: per example, the targeted steps
  taken before ``|value_t(D(x)) - target| <= tolerance`` first holds (-1: never within
  ``max_iters``)."""
  @tf.function
  def run(xb, yb, target):
    def value_fn(v):
      return value_t(batching.logits_of(d_fn(v, yb)))

    bcast = [-1] + [1] * (xb.shape.rank - 1)
    steps0 = -tf.ones(tf.shape(xb)[:1], tf.int32)

    def cond(i, x, steps):
      return tf.logical_and(i <= max_iters, tf.reduce_any(steps < 0))

    def body(i, x, steps):
      # One pass gives the success check and the attack gradient (the step's own fresh pass
      # would repeat the same forward): 2 passes per iteration instead of 3.
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        gap = tf.abs(value_fn(x) - tf.cast(target, x.dtype))
        total = tf.reduce_sum(gap)
      grad = tape.gradient(total, x,
                           unconnected_gradients=tf.UnconnectedGradients.ZERO)
      ok = gap <= tolerance
      steps = tf.where(tf.logical_and(ok, steps < 0), i, steps)
      x_next = attacks.targeted_one_step(x, None, target, step_size, direction=direction, clip=clip,
                                         grad=grad)
      x = tf.where(tf.reshape(steps < 0, bcast), x_next, x)
      return i + 1, x, steps

    _, _, steps = tf.while_loop(cond, body, (tf.constant(0), xb, steps0),
                                maximum_iterations=max_iters + 1)
    return {"steps": steps}
  return run


def _summarize(steps, max_iters):
  """``(xi, fail fraction, xi over successes)`` of per-example step counts (-1: failed)."""
  ok = steps >= 0
  capped = np.where(ok, steps, max_iters)
  return (float(np.mean(capped)), float(np.mean(~ok)),
          float(np.mean(steps[ok])) if ok.any() else float("nan"))


def _mean_value(value_t, logits):
  return float(np.mean(value_t(tf.constant(logits)).numpy()))


def _checked_sets(real, fake, real_labels, fake_labels):
  xr = batching.check_images(real, "real")
  xf = batching.check_images(fake, "fake")
  yr = batching.as_array(real_labels, np.int32, "real_labels")
  yf = batching.as_array(fake_labels, np.int32, "fake_labels")
  batching.check_pair(xr, yr)
  batching.check_pair(xf, yf)
  return xr, xf, yr, yf


@gin.configurable(denylist=["d_fn", "real", "fake", "loss", "real_labels", "fake_labels"])
def dat_attack_success(d_fn, real, fake, loss=None, tolerance=0.02, max_iters=100,
                       step_size=1.0 / 255, direction="sign", value="logit", real_labels=None,
                       fake_labels=None, clip=True, batch_size=256, return_per_example=False):
  """DAT Eq. 1 / Fig. 1: how many targeted steps make D confuse fakes with reals and vice versa.

  See the module docstring for the reading of Eq. 1 (targets are set means, counts per example,
  failures counted as ``max_iters``).

  Args:
    d_fn: ``d_fn(x, labels) -> {"logits": [B]}``.
    real: ``[Nr, ...]`` real samples.
    fake: ``[Nf, ...]`` generated samples.
    loss: the GAN's loss (name or ``losses.Loss``); only used by ``value="loss"``.
    tolerance: success when ``|value(x_adv) - target| <= tolerance`` (DAT: 0.02).
    max_iters: cap on the attack steps per example.
    step_size: per-step size of ``attacks.targeted_one_step`` ([-1, 1] scale).
    direction: ``targeted_one_step`` direction: ``"sign"``, ``"raw"`` or ``"l2"``.
    value: ``"logit"``, ``"probability"`` or ``"loss"`` (what "D" means in Eq. 1).
    real_labels: optional ``[Nr]`` labels for ``d_fn``.
    fake_labels: optional ``[Nf]`` labels for ``d_fn``.
    clip: clip to [-1, 1] after every step.
    batch_size: batch size.
    return_per_example: also return ``steps_fake`` / ``steps_real``: ``[N]`` int arrays of
      steps to success, -1 for failures.

  Returns:
    dict with ``xi_fake``, ``xi_real``, ``fail_fake``, ``fail_real``, ``xi_fake_successful``,
    ``xi_real_successful`` (NaN when nothing succeeded), ``target_fake`` (the real mean the fakes
    are attacked towards), ``target_real``, and the settings used.
  """
  errors.check(isinstance(max_iters, int) and max_iters >= 0,
               f"max_iters must be an int >= 0; got {max_iters!r}.")
  errors.check(tolerance >= 0, f"tolerance must be >= 0; got {tolerance}.")
  _check_direction(direction)
  xr, xf, yr, yf = _checked_sets(real, fake, real_labels, fake_labels)
  value_real = _dat_value(value, loss, real=True)
  value_fake = _dat_value(value, loss, real=False)
  # Eq. 9's pairing: reals move towards mean g1(D(x_f)), fakes towards mean g2(D(x_r)); for
  # "logit" / "probability" both functions are the same.
  t_real = batching.logits(d_fn, xr, yr, batch_size)
  t_fake = batching.logits(d_fn, xf, yf, batch_size)
  target_for_real = _mean_value(value_real, t_fake)
  target_for_fake = _mean_value(value_fake, t_real)

  def steps_to_success(is_real, x, y, target):
    settings = (value, loss if value == "loss" else None, float(tolerance), max_iters,
                float(step_size), direction, bool(clip), is_real)
    run = batching.compiled(d_fn, ("dat_attack",) + settings, lambda: _make_steps_to_success(
        d_fn, value_real if is_real else value_fake, tolerance, max_iters, step_size, direction, clip))
    return batching.run_batched(run, [x, y], batch_size,
                                (tf.constant(target, tf.float32),))["steps"]

  steps_fake = steps_to_success(False, xf, yf, target_for_fake)
  steps_real = steps_to_success(True, xr, yr, target_for_real)
  (xi_f, fail_f, xi_fs), (xi_r, fail_r, xi_rs) = (_summarize(steps_fake, max_iters),
                                                    _summarize(steps_real, max_iters))
  out = {"xi_fake": xi_f, "xi_real": xi_r, "fail_fake": fail_f, "fail_real": fail_r,
         "xi_fake_successful": xi_fs, "xi_real_successful": xi_rs,
         "target_fake": target_for_fake, "target_real": target_for_real,
         "tolerance": float(tolerance), "max_iters": int(max_iters),
         "step_size": float(step_size), "direction": direction, "value": value}
  if return_per_example:
    out["steps_fake"] = steps_fake
    out["steps_real"] = steps_real
  return out


def dat_first_order(d_fn, images, target, epsilon=0.01, direction="sign", value="logit", loss=None,
                    real=True, labels=None, clip=True, batch_size=256):
  """Does DAT's Eq. 11-13 first-order expansion hold for its own one-step attack?

  For each example, delta is DAT's targeted step toward `target` (``attacks.targeted_one_step``:
  size `epsilon`, `direction`), and v is what DAT attacks (``value``: the logit, sigmoid, or g1 / g2
  of `loss` for reals / fakes). Compares the actual change ``v(x + delta) - v(x)`` with the
  expansion's ``grad_x v(x) . delta`` and says whether the step crosses the target.

  Returns:
    dict: ``relative_error_median`` (median of |actual - predicted| / |predicted|),
    ``sign_agreement`` (fraction where actual and predicted changes have the same sign),
    ``overshoot_fraction`` (fraction whose value ends on the other side of `target`), ``epsilon``,
    ``direction``, ``value``.
  """
  _check_direction(direction)
  x, y = batching.checked_inputs(d_fn, images, labels)
  value_t = _dat_value(value, loss, real=real)

  def make():
    @tf.function
    def run(xb, yb, m):
      def v_fn(v):
        return value_t(batching.logits_of(d_fn(v, yb)))
      v0, g = tensor_ops.input_gradient(v_fn, xb)
      # grad_x |v - m| = sign(v - m) grad_x v per example (inference mode): the attack's own
      # gradient, taken from the pass above instead of a second one.
      s = tf.reshape(tf.sign(v0 - m), [-1] + [1] * (xb.shape.rank - 1))
      x_adv = attacks.targeted_one_step(xb, None, m, epsilon, direction=direction, clip=clip, grad=s * g)
      delta = x_adv - xb
      predicted = tf.reduce_sum(tf.reshape(g * delta, [tf.shape(xb)[0], -1]), axis=1)
      v1 = v_fn(x_adv)
      return {"actual": v1 - v0, "predicted": predicted,
              "crossed": tf.cast(tf.not_equal(tf.sign(v1 - m), tf.sign(v0 - m)), tf.float32)}
    return run

  key = ("dat_first_order", float(epsilon), direction, value, loss if value == "loss" else None, real,
         bool(clip))
  out = batching.run_batched(batching.compiled(d_fn, key, make), [x, y], batch_size,
                             (tf.constant(target, tf.float32),))
  actual, predicted = out["actual"].astype(np.float64), out["predicted"].astype(np.float64)
  rel = np.abs(actual - predicted) / np.maximum(np.abs(predicted), 1e-12)
  return {"relative_error_median": float(np.median(rel)),
          "sign_agreement": float(np.mean(np.sign(actual) == np.sign(predicted))),
          "overshoot_fraction": float(np.mean(out["crossed"])),
          "epsilon": float(epsilon), "direction": direction, "value": value}


def wasserstein_estimate(d_fn, real, fake, real_labels=None, fake_labels=None, batch_size=256):
  """DAT Figs. 4-7: ``mean D(x_r) - mean D(x_f)`` on raw logits (a float)."""
  logits_real = batching.logits(d_fn, real, real_labels, batch_size)
  logits_fake = batching.logits(d_fn, fake, fake_labels, batch_size)
  return float(np.mean(logits_real.astype(np.float64)) - np.mean(logits_fake.astype(np.float64)))
