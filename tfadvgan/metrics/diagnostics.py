"""Robustness and gradient diagnostics of a discriminator (AS-GAN, DAT and Rob-GAN figures/tables).

Every function takes a discriminator callable ``d_fn(x, labels=None) -> {"logits": [B], ...}`` (a
plain ``[B]`` tensor is accepted too) and works on any checkpoint; ``discriminator_fn(gan)`` makes
one from a ``GAN`` (inference mode by default: ``training`` is a parameter there). Inputs may be
numpy arrays or tensors; work runs in fixed-size batches (``batch_size``; the last batch is padded
by repeating its last row and the padding is dropped, so every compiled function sees one static
shape and traces once). Results are Python floats / numpy arrays.

| function                        | reproduces                                               |
| ------------------------------- | -------------------------------------------------------- |
| ``d_accuracy``                  | AS-GAN Table 2 (accuracy on reals under FGSM, eps 1/255)  |
| ``classifier_accuracy_under_pgd`` | Rob-GAN Table 1 (AC-head accuracy under L-inf PGD)     |
| ``local_lipschitz``             | Rob-GAN Fig. 1 right (``||grad_x CE||_2``, train vs test) |
| ``dat_attack_success``          | DAT Eq. 1 / Fig. 1 (xi_fake, xi_real)                    |
| ``dat_first_order``             | DAT Eqs. 11-13 (does the first-order expansion hold?)    |
| ``input_gradient_stats``        | AS-GAN Fig. 9 (gradient histogram, L1 norm, sparsity)    |
| ``gradient_grid``               | AS-GAN Fig. 2 (gradient maps)                            |
| ``confidence_real_vs_adversarial`` | AS-GAN Fig. 10a (sigma(D(x)) vs sigma(D(x_adv)))      |
| ``wasserstein_estimate``        | DAT Figs. 4-7 (E D(x_r) - E D(x_f))                      |
| ``batch_diagnostics``           | one-batch scalars for TensorBoard during training        |

Readings and decisions (also in docs/evaluation.md, "Evaluation: decisions"):

- **epsilon scale.** Every epsilon / step size is an L-inf distance on the library's [-1, 1] image
  scale, and attacked images are clipped to [-1, 1] (``clip=False`` for unbounded 2-D toy data). On
  this scale one 8-bit level is 2/255, so the default 1/255 (AS-GAN's Table 2 value, whose paper
  does not state the scale) is half a level; pass 2/255 to mean "1/255 on [0, 1]". Rob-GAN states
  its Table 1 epsilons (0.02 ... 0.08) on [-1, 1], as here.
- **D accuracy.** A real is correct when its logit is > 0, a fake when it is < 0 (``threshold``).
  For WGAN critics the sign of the logit has no meaning; read their accuracy with care.
- **Attack loss for D accuracy / confidence.** The attack increases the binary cross entropy that
  pushes the sample to the wrong side: ``softplus(-t) = -log sigmoid(t)`` on reals and
  ``softplus(t) = -log(1 - sigmoid(t))`` on fakes (``attack_loss="bce"``), whatever loss the GAN
  was trained with (hinge / WGAN losses have flat or meaningless regions). Sign-based attacks
  (FGSM, L-inf PGD) take the same steps for any increasing function of ``-t`` wherever the BCE
  gradient does not underflow (``|t| > ~88`` in float32); ``attack_loss="logit"`` (``-t`` / ``t``)
  avoids that underflow.
- **PGD for D accuracy**: no random start by default (deterministic), ``step_size`` default
  ``2.5 * epsilon / steps`` (Madry et al.). **Rob-GAN Table 1 PGD** follows the authors' evaluation
  code (``acc_under_attack.py`` / ``miscs/pgd.py``): no random start, 20 steps of ``epsilon / 5``
  on the cross entropy of the AC head, images in [-1, 1].
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
- **Input gradients** (Figs. 2, 9) are of the raw logit ``D(x)`` (not sigmoid(D) or the loss, whose
  scale depends on the confidence), per example (inference mode: examples are independent).
  L1 = sum over all input entries of ``|grad|``, averaged over examples; sparsity = fraction of
  entries with ``|grad| <= zero_tol``; the histogram range is ``[-m, m]`` with ``m = max |grad|``
  unless ``hist_range`` is given. The grid (Fig. 2) clips each image's gradient to its mean
  +- 3 std, takes the absolute value averaged over channels, and scales each map by its maximum
  (white = largest).
- **Wasserstein estimate**: ``mean D(x_r) - mean D(x_f)`` on raw logits (DAT Figs. 4-7).
- **Mode.** Inference mode by default (``discriminator_fn(gan, training=False)``), which also makes
  examples independent, so batching and padding do not change any number. ``training=True``
  uses batch statistics (padded rows then enter them) and, with Keras semantics, *updates* BN
  moving statistics and spectral-norm kernels on every call: never use it on a model that is
  still training.
"""
import math
import weakref

import gin
import numpy as np
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan import images as images_lib
from tfadvgan import losses as losses_lib
from tfadvgan import ops
from tfadvgan import rng

DEFAULT_EPSILONS = (0.0, 0.5 / 255, 1.0 / 255, 2.0 / 255, 4.0 / 255)
ROBGAN_EPSILONS = (0.0, 0.02, 0.04, 0.08)
ATTACKS = ("none", "fgsm", "pgd")
ATTACK_LOSSES = ("bce", "logit")
DAT_VALUES = ("logit", "probability", "loss")


# --------------------------------------------------------------------------------------- helpers
_D_FNS = weakref.WeakKeyDictionary()  # discriminator model -> {(conditional, training): d_fn}


def discriminator_fn(gan, training=False):
  """``d_fn(x, labels=None) -> dict`` for ``gan.discriminator`` (labels fed only if conditional).

  The same callable comes back for the same discriminator and settings, so the compiled
  functions the diagnostics cache on it (``_compiled``) are traced once per run, not at every
  call (a DAT run computes xi every ``train.diagnose_every_steps``).

  Args:
    gan: a ``tfadvgan.gans.GAN`` (or anything with ``discriminator`` and ``conditional``).
    training: the discriminator's mode (default inference: BN moving statistics, no dropout).

  Returns:
    The callable the diagnostics take.
  """
  conditional = bool(getattr(gan, "conditional", False))
  training = bool(training)
  try:
    per_model = _D_FNS.setdefault(gan.discriminator, {})
  except TypeError:  # not weak-referenceable: a fresh callable, nothing cached
    per_model = {}
  if (conditional, training) not in per_model:
    model = weakref.ref(gan.discriminator)  # the cached value must not keep its key alive

    def d_fn(x, labels=None):
      if conditional:
        errors.check(labels is not None,
                     "This run is class-conditional: the discriminator diagnostics need labels.")
      return model()(x, labels if conditional else None, training=training)

    per_model[(conditional, training)] = d_fn
  return per_model[(conditional, training)]


def _compiled(d_fn, key, make):
  """``make()`` (a ``tf.function``), cached on ``d_fn`` under ``key`` so that repeated calls with
  the same discriminator callable reuse its traces. Callables that take no attributes (bound
  methods) get a fresh one each call."""
  cache = getattr(d_fn, "_tfadvgan_compiled", None)
  if cache is None:
    cache = {}
    try:
      d_fn._tfadvgan_compiled = cache  # pylint: disable=protected-access
    except AttributeError:
      return make()
  if key not in cache:
    cache[key] = make()
  return cache[key]


def _logits(out):
  """The ``[B]`` logits of a discriminator output (dict or tensor)."""
  t = out["logits"] if isinstance(out, dict) else out
  t = tf.convert_to_tensor(t)
  if t.shape.rank == 2 and t.shape[-1] == 1:
    t = t[:, 0]
  return t


def _class_logits(out):
  if isinstance(out, dict):
    errors.check("class_logits" in out,
                 "The discriminator has no 'class_logits' output: classifier accuracy needs an "
                 "auxiliary-classifier head (build_discriminator.head = 'ac').")
    return out["class_logits"]
  return out


def _as_array(x, dtype, what):
  if x is None:
    return None
  arr = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
  errors.check(arr.ndim >= 1 and arr.shape[0] >= 1, f"{what} must be a non-empty batch; got "
               f"shape {arr.shape}.")
  return arr.astype(dtype, copy=False)


def _check_pair(images, labels):
  if labels is not None:
    errors.check(labels.shape == (images.shape[0],),
                 f"labels must have shape [{images.shape[0]}]; got {labels.shape}.")


def _check_batch_size(batch_size):
  errors.check(isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1,
               f"batch_size must be an int >= 1; got {batch_size!r}.")


def _run_batched(fn, arrays, batch_size, extra=()):
  """Runs ``fn(*batch_arrays, *extra) -> dict of [b, ...] tensors`` over fixed-size batches.

  The last batch is padded to ``batch_size`` rows by repeating its last row (one static shape, one
  trace); padded rows are dropped. ``None`` entries of ``arrays`` are passed as ``None``.

  Returns:
    dict of numpy arrays with ``N`` rows.
  """
  _check_batch_size(batch_size)
  n = next(a for a in arrays if a is not None).shape[0]
  size = min(batch_size, n)
  outs = {}
  for start in range(0, n, size):
    stop = min(start + size, n)
    batch = []
    for a in arrays:
      if a is None:
        batch.append(None)
        continue
      part = a[start:stop]
      if stop - start < size:
        pad = np.repeat(part[-1:], size - (stop - start), axis=0)
        part = np.concatenate([part, pad], axis=0)
      batch.append(tf.convert_to_tensor(part))
    result = fn(*batch, *extra)
    for key, value in result.items():
      outs.setdefault(key, []).append(np.asarray(value)[:stop - start])
  return {k: np.concatenate(v, axis=0) for k, v in outs.items()}


def _mean(values):
  """Float64 mean as a Python float (float32 means of 0/1 values are not exact fractions)."""
  return float(np.mean(np.asarray(values, np.float64)))


def _attack_loss(real, attack_loss):
  """Per-example loss (of logits) that an attack increases to push samples to the wrong side."""
  errors.check(attack_loss in ATTACK_LOSSES,
               f"attack_loss must be one of {', '.join(ATTACK_LOSSES)}; got {attack_loss!r}.")
  if attack_loss == "bce":
    return (lambda t: tf.nn.softplus(-t)) if real else tf.nn.softplus
  return (lambda t: -t) if real else (lambda t: t)


def _check_epsilons(epsilons):
  eps = [float(e) for e in (epsilons if np.ndim(epsilons) else [epsilons])]
  errors.check(eps and all(e >= 0 and math.isfinite(e) for e in eps),
               f"epsilons must be finite numbers >= 0; got {epsilons!r}.")
  return eps


def _check_images(images, what="images"):
  arr = _as_array(images, np.float32, what)
  errors.check(arr.ndim >= 2, f"{what} must be [N, ...]; got shape {arr.shape}.")
  return arr


def _probe(d_fn, x, y, extract=None):
  """Calls ``d_fn`` eagerly on one example, so that its ConfigErrors (missing labels or outputs)
  surface as such instead of as errors while tracing."""
  out = d_fn(tf.constant(x[:1]), None if y is None else tf.constant(y[:1]))
  (extract or _logits)(out)


def _logit_fn(d_fn, labels):
  return lambda x: _logits(d_fn(x, labels))


def logits(d_fn, images, labels=None, batch_size=256):
  """``[N]`` numpy logits of ``d_fn`` on ``images`` (batched, compiled)."""
  return _map_batches(d_fn, images, labels, batch_size,
                      lambda xb, yb: {"t": _logits(d_fn(xb, yb))}, key=("logits",))["t"]


def _map_batches(d_fn, images, labels, batch_size, per_batch, key=None):
  """Checks inputs, then runs the compiled `per_batch(xb, yb) -> dict` over all batches
  (`key`: cache the compiled function on `d_fn` under it; `per_batch` must then depend on nothing
  but `d_fn` and the key)."""
  x = _check_images(images)
  y = _as_array(labels, np.int32, "labels")
  _check_pair(x, y)
  _probe(d_fn, x, y)
  fn = (tf.function(per_batch) if key is None
        else _compiled(d_fn, key, lambda: tf.function(per_batch)))
  return _run_batched(fn, [x, y], batch_size)


# ------------------------------------------------------------------------------ 1. D accuracy
@gin.configurable(denylist=["d_fn", "images", "labels"])
def d_accuracy(d_fn, images, labels=None, attack="fgsm", epsilons=DEFAULT_EPSILONS, real=True,
               pgd_steps=10, step_size=None, random_start=False, seed=0, attack_loss="bce",
               threshold=0.0, clip=True, batch_size=256):
  """Fraction of samples D puts on the right side, clean and under FGSM / PGD (AS-GAN Table 2).

  Args:
    d_fn: ``d_fn(x, labels) -> {"logits": [B]}``.
    images: ``[N, ...]`` real (``real=True``) or fake samples in [-1, 1].
    labels: optional ``[N]`` int labels passed to ``d_fn`` (conditional discriminators).
    attack: ``"none"``, ``"fgsm"`` or ``"pgd"`` (L-inf).
    epsilons: L-inf budgets on the [-1, 1] scale; 0 gives the clean accuracy.
    real: the samples are real (correct: logit > threshold) or fake (logit < threshold).
    pgd_steps: PGD steps.
    step_size: PGD step; None means ``2.5 * epsilon / pgd_steps``.
    random_start: PGD random start in the ball (stateless, from ``seed``).
    seed: int seed of the PGD random start.
    attack_loss: ``"bce"`` (softplus(-t) on reals, softplus(t) on fakes) or ``"logit"``.
    threshold: decision threshold on the logit.
    clip: clip attacked inputs to [-1, 1].
    batch_size: batch size.

  Returns:
    ``{epsilon: accuracy}`` (floats; the clean accuracy for epsilon 0 or attack "none").
  """
  errors.check(attack in ATTACKS, f"attack must be one of {', '.join(ATTACKS)}; got {attack!r}.")
  errors.check(isinstance(pgd_steps, int) and pgd_steps >= 1,
               f"pgd_steps must be an int >= 1; got {pgd_steps!r}.")
  eps_list = _check_epsilons(epsilons)
  x = _check_images(images)
  y = _as_array(labels, np.int32, "labels")
  _check_pair(x, y)
  _probe(d_fn, x, y)
  loss = _attack_loss(real, attack_loss)
  sign = 1.0 if real else -1.0

  @tf.function
  def correct(xb, yb, eps, alpha, seed_t):
    logit_fn = _logit_fn(d_fn, yb)
    if attack == "fgsm":
      xb = attacks.fgsm(xb, lambda v: loss(logit_fn(v)), eps, clip=clip)
    elif attack == "pgd":
      xb = attacks.pgd(xb, lambda v: loss(logit_fn(v)), eps, pgd_steps, alpha,
                       random_start=random_start, seed=seed_t, clip=clip)
    t = logit_fn(xb)
    return {"correct": tf.cast(sign * (t - threshold) > 0, tf.float32)}

  @tf.function
  def clean(xb, yb):
    t = _logits(d_fn(xb, yb))
    return {"correct": tf.cast(sign * (t - threshold) > 0, tf.float32)}

  results = {}
  clean_acc = None
  for eps in eps_list:
    if eps == 0.0 or attack == "none":
      if clean_acc is None:
        clean_acc = _mean(_run_batched(clean, [x, y], batch_size)["correct"])
      results[eps] = clean_acc
      continue
    alpha = (attacks.default_pgd_step_size(eps, pgd_steps) if step_size is None
             else float(step_size))
    extra = (tf.constant(eps, tf.float32), tf.constant(alpha, tf.float32),
             tf.constant([seed, rng.DIAGNOSTICS_PGD], tf.int32))
    results[eps] = _mean(_run_batched(correct, [x, y], batch_size, extra)["correct"])
  return results


# ------------------------------------------------------------------ 2. Rob-GAN classifier accuracy
@gin.configurable(denylist=["class_logits_fn", "images", "labels"])
def classifier_accuracy_under_pgd(class_logits_fn, images, labels, epsilons=ROBGAN_EPSILONS,
                                  steps=20, step_size=None, random_start=False, seed=0, clip=True,
                                  batch_size=256):
  """Top-1 accuracy of an auxiliary classifier under L-inf PGD on its cross entropy (Rob-GAN T. 1).

  Args:
    class_logits_fn: ``f(x, labels) -> [B, C]`` class logits, or a discriminator returning a dict
      with ``"class_logits"``. ``labels`` are passed through for conditional discriminators (an AC
      head ignores them).
    images: ``[N, ...]`` real images in [-1, 1].
    labels: ``[N]`` int true classes.
    epsilons: L-inf budgets on the [-1, 1] scale (Rob-GAN CIFAR-10: 0, 0.02, 0.04, 0.08).
    steps: PGD steps (the authors' evaluation script uses 20).
    step_size: per-step size; None means ``epsilon / 5`` (the authors' code).
    random_start: random start in the ball (the authors' code: none).
    seed: int seed of the random start.
    clip: clip to [-1, 1].
    batch_size: batch size.

  Returns:
    ``{epsilon: accuracy}``.
  """
  errors.check(isinstance(steps, int) and steps >= 1, f"steps must be an int >= 1; got {steps!r}.")
  eps_list = _check_epsilons(epsilons)
  x = _check_images(images)
  errors.check(labels is not None, "classifier_accuracy_under_pgd needs the true labels.")
  y = _as_array(labels, np.int32, "labels")
  _check_pair(x, y)
  _probe(class_logits_fn, x, y, _class_logits)

  def class_logits(v, yb):
    return _class_logits(class_logits_fn(v, yb))

  @tf.function
  def correct(xb, yb, eps, alpha, seed_t):
    def xent(v):
      return losses_lib.class_cross_entropy(class_logits(v, yb), yb)
    xb = attacks.pgd(xb, xent, eps, steps, alpha, random_start=random_start, seed=seed_t,
                     clip=clip)
    pred = tf.argmax(class_logits(xb, yb), axis=-1, output_type=tf.int32)
    return {"correct": tf.cast(tf.equal(pred, yb), tf.float32)}

  @tf.function
  def clean(xb, yb):
    pred = tf.argmax(class_logits(xb, yb), axis=-1, output_type=tf.int32)
    return {"correct": tf.cast(tf.equal(pred, yb), tf.float32)}

  results = {}
  for eps in eps_list:
    if eps == 0.0:
      results[eps] = _mean(_run_batched(clean, [x, y], batch_size)["correct"])
      continue
    alpha = eps / 5.0 if step_size is None else float(step_size)
    extra = (tf.constant(eps, tf.float32), tf.constant(alpha, tf.float32),
             tf.constant([seed, rng.DIAGNOSTICS_CLASS_PGD], tf.int32))
    results[eps] = _mean(_run_batched(correct, [x, y], batch_size, extra)["correct"])
  return results


def local_lipschitz(class_logits_fn, images, labels, batch_size=256):
  """Rob-GAN Fig. 1 (right): the local Lipschitz value ``||grad_x CE(f(x), y)||_2`` per example.

  The paper measures it at training and at test pairs ``(x_i, y_i)``: an adversarially trained
  classifier keeps it low on the training set while it grows on the test set (its
  generalisation gap). Computed at the data points themselves, as the paper's figure defines it,
  in inference mode.

  Args:
    class_logits_fn: as in ``classifier_accuracy_under_pgd``.
    images: ``[N, ...]`` inputs.
    labels: ``[N]`` int true classes.
    batch_size: batch size.

  Returns:
    dict: ``mean``, ``median``, ``max`` (over examples) and ``per_example`` (``[N]`` numpy).
  """
  x = _check_images(images)
  errors.check(labels is not None, "local_lipschitz needs the true labels.")
  y = _as_array(labels, np.int32, "labels")
  _check_pair(x, y)
  _probe(class_logits_fn, x, y, _class_logits)

  def make():
    @tf.function
    def norms(xb, yb):
      with tf.GradientTape() as tape:
        tape.watch(xb)
        xent = losses_lib.class_cross_entropy(_class_logits(class_logits_fn(xb, yb)), yb)
      g = tape.gradient(xent, xb)  # per example: each CE depends only on its own input
      return {"llv": tf.norm(tf.reshape(g, [tf.shape(g)[0], -1]), axis=1)}
    return norms

  llv = _run_batched(_compiled(class_logits_fn, ("local_lipschitz",), make), [x, y],
                     batch_size)["llv"].astype(np.float64)
  return {"mean": float(np.mean(llv)), "median": float(np.median(llv)), "max": float(np.max(llv)),
          "per_example": llv}


# -------------------------------------------------------------------------- 3. DAT xi_fake/real
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


@gin.configurable(denylist=["d_fn", "real", "fake", "loss", "real_labels", "fake_labels"])
def dat_attack_success(d_fn, real, fake, loss=None, tolerance=0.02, max_iters=100,
                       step_size=1.0 / 255, step="sign", value="logit", real_labels=None,
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
    step: ``targeted_one_step`` step kind: ``"sign"``, ``"raw"`` or ``"l2"``.
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
  errors.check(step in attacks.STEPS,
               f"step must be one of {', '.join(attacks.STEPS)}; got {step!r}.")
  xr = _check_images(real, "real")
  xf = _check_images(fake, "fake")
  yr = _as_array(real_labels, np.int32, "real_labels")
  yf = _as_array(fake_labels, np.int32, "fake_labels")
  _check_pair(xr, yr)
  _check_pair(xf, yf)
  value_real = _dat_value(value, loss, real=True)
  value_fake = _dat_value(value, loss, real=False)
  t_real = logits(d_fn, xr, yr, batch_size)
  t_fake = logits(d_fn, xf, yf, batch_size)
  # Eq. 9's pairing: reals move towards mean g1(D(x_f)), fakes towards mean g2(D(x_r)); for
  # "logit" / "probability" both functions are the same.
  target_for_real = float(np.mean(value_real(tf.constant(t_fake)).numpy()))
  target_for_fake = float(np.mean(value_fake(tf.constant(t_real)).numpy()))

  def make_attack(value_t):
    @tf.function
    def run(xb, yb, target):
      def value_fn(v):
        return value_t(_logits(d_fn(v, yb)))

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
        x_next = attacks.targeted_one_step(x, None, target, step_size, step=step, clip=clip,
                                           grad=grad)
        x = tf.where(tf.reshape(steps < 0, bcast), x_next, x)
        return i + 1, x, steps

      _, _, steps = tf.while_loop(cond, body, (tf.constant(0), xb, steps0),
                                  maximum_iterations=max_iters + 1)
      return {"steps": steps}
    return run

  def summarize(steps):
    ok = steps >= 0
    capped = np.where(ok, steps, max_iters)
    return (float(np.mean(capped)), float(np.mean(~ok)),
            float(np.mean(steps[ok])) if ok.any() else float("nan"))

  def attack(real):
    settings = (value, loss if value == "loss" else None, float(tolerance), max_iters,
                float(step_size), step, bool(clip), real)
    return _compiled(d_fn, ("dat_attack",) + settings,
                     lambda: make_attack(value_real if real else value_fake))

  steps_fake = _run_batched(attack(False), [xf, yf], batch_size,
                            (tf.constant(target_for_fake, tf.float32),))["steps"]
  steps_real = _run_batched(attack(True), [xr, yr], batch_size,
                            (tf.constant(target_for_real, tf.float32),))["steps"]
  xi_f, fail_f, xi_fs = summarize(steps_fake)
  xi_r, fail_r, xi_rs = summarize(steps_real)
  out = {"xi_fake": xi_f, "xi_real": xi_r, "fail_fake": fail_f, "fail_real": fail_r,
         "xi_fake_successful": xi_fs, "xi_real_successful": xi_rs,
         "target_fake": target_for_fake, "target_real": target_for_real,
         "tolerance": float(tolerance), "max_iters": int(max_iters),
         "step_size": float(step_size), "step": step, "value": value}
  if return_per_example:
    out["steps_fake"] = steps_fake
    out["steps_real"] = steps_real
  return out


def dat_first_order(d_fn, images, target, epsilon=0.01, step="sign", value="logit", loss=None,
                    real=True, labels=None, clip=True, batch_size=256):
  """Does DAT's Eq. 11-13 first-order expansion hold for its own one-step attack?

  For each example, delta is DAT's targeted step toward `target` (``attacks.targeted_one_step``:
  size `epsilon`, `step`), and v is what DAT attacks (``value``: the logit, sigmoid, or g1 / g2
  of `loss` for reals / fakes). Compares the actual change ``v(x + delta) - v(x)`` with the
  expansion's ``grad_x v(x) . delta`` and says whether the step crosses the target.

  Returns:
    dict: ``relative_error_median`` (median of |actual - predicted| / |predicted|),
    ``sign_agreement`` (fraction where actual and predicted changes have the same sign),
    ``overshoot_fraction`` (fraction whose value ends on the other side of `target`), ``epsilon``,
    ``step``, ``value``.
  """
  errors.check(step in attacks.STEPS,
               f"step must be one of {', '.join(attacks.STEPS)}; got {step!r}.")
  x = _check_images(images)
  y = _as_array(labels, np.int32, "labels")
  _check_pair(x, y)
  _probe(d_fn, x, y)
  value_t = _dat_value(value, loss, real=real)

  def make():
    @tf.function
    def run(xb, yb, m):
      def v_fn(v):
        return value_t(_logits(d_fn(v, yb)))
      v0, g = ops.input_gradient(v_fn, xb)
      # grad_x |v - m| = sign(v - m) grad_x v per example (inference mode): the attack's own
      # gradient, taken from the pass above instead of a second one.
      s = tf.reshape(tf.sign(v0 - m), [-1] + [1] * (xb.shape.rank - 1))
      x_adv = attacks.targeted_one_step(xb, None, m, epsilon, step=step, clip=clip, grad=s * g)
      delta = x_adv - xb
      predicted = tf.reduce_sum(tf.reshape(g * delta, [tf.shape(xb)[0], -1]), axis=1)
      v1 = v_fn(x_adv)
      return {"actual": v1 - v0, "predicted": predicted,
              "crossed": tf.cast(tf.not_equal(tf.sign(v1 - m), tf.sign(v0 - m)), tf.float32)}
    return run

  key = ("dat_first_order", float(epsilon), step, value, loss if value == "loss" else None, real,
         bool(clip))
  out = _run_batched(_compiled(d_fn, key, make), [x, y], batch_size,
                     (tf.constant(target, tf.float32),))
  actual, predicted = out["actual"].astype(np.float64), out["predicted"].astype(np.float64)
  rel = np.abs(actual - predicted) / np.maximum(np.abs(predicted), 1e-12)
  return {"relative_error_median": float(np.median(rel)),
          "sign_agreement": float(np.mean(np.sign(actual) == np.sign(predicted))),
          "overshoot_fraction": float(np.mean(out["crossed"])),
          "epsilon": float(epsilon), "step": step, "value": value}


# -------------------------------------------------------------------------- 4. input gradients
def input_gradients(d_fn, images, labels=None, batch_size=256):
  """``[N, ...]`` numpy gradients of the logit ``D(x)`` w.r.t. each input (batched, compiled)."""
  return _map_batches(d_fn, images, labels, batch_size,
                      lambda xb, yb: {"g": ops.input_gradient(_logit_fn(d_fn, yb), xb)[1]},
                      key=("input_gradients",))["g"]


@gin.configurable(denylist=["d_fn", "images", "labels"])
def input_gradient_stats(d_fn, images, labels=None, zero_tol=1e-6, bins=50, hist_range=None,
                         batch_size=256):
  """AS-GAN Fig. 9: L1 norm, sparsity and histogram of ``grad_x D(x)`` on (real) images.

  Args:
    d_fn: ``d_fn(x, labels) -> {"logits": [B]}``.
    images: ``[N, ...]`` inputs.
    labels: optional ``[N]`` labels for ``d_fn``.
    zero_tol: entries with ``|grad| <= zero_tol`` count as zero.
    bins: histogram bins.
    hist_range: ``(lo, hi)``; None means ``[-max|grad|, max|grad|]``.
    batch_size: batch size.

  Returns:
    dict: ``l1`` (mean over examples of the per-example L1 norm), ``l1_std``, ``l2`` (mean
    per-example L2 norm), ``sparsity`` (fraction of near-zero entries), ``histogram``:
    ``{"counts": [bins] int64, "edges": [bins + 1] float64}``.
  """
  errors.check(isinstance(bins, int) and bins >= 1, f"bins must be an int >= 1; got {bins!r}.")
  g = input_gradients(d_fn, images, labels, batch_size)
  flat = g.reshape(g.shape[0], -1).astype(np.float64)
  l1 = np.sum(np.abs(flat), axis=1)
  if hist_range is None:
    m = float(np.max(np.abs(flat))) if flat.size else 0.0
    hist_range = (-m, m) if m > 0 else (-1.0, 1.0)
  counts, edges = np.histogram(flat, bins=bins, range=tuple(float(r) for r in hist_range))
  return {"l1": float(np.mean(l1)), "l1_std": float(np.std(l1)),
          "l2": float(np.mean(np.sqrt(np.sum(flat * flat, axis=1)))),
          "sparsity": float(np.mean(np.abs(flat) <= zero_tol)),
          "histogram": {"counts": counts, "edges": edges}}


def gradient_maps(gradients):
  """``[N, H, W, C]`` gradients -> ``[N, H, W]`` maps in [0, 1] as in AS-GAN Fig. 2.

  Each image's gradient is clipped to its mean +- 3 std, then ``|.|`` is averaged over channels
  and the map is divided by its maximum (all-zero maps stay zero).
  """
  g = np.asarray(gradients, np.float64)
  errors.check(g.ndim == 4, f"gradient maps need [N, H, W, C] image gradients; got {g.shape}.")
  axes = (1, 2, 3)
  mean = g.mean(axis=axes, keepdims=True)
  std = g.std(axis=axes, keepdims=True)
  g = np.clip(g, mean - 3 * std, mean + 3 * std)
  maps = np.abs(g).mean(axis=-1)
  peak = maps.max(axis=(1, 2), keepdims=True)
  return np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), 0.0)


def gradient_grid(d_fn, images, labels=None, columns=None, batch_size=256):
  """AS-GAN Fig. 2: a uint8 grid ``[rows*(H+2)+2, cols*(W+2)+2, 1]`` of ``|grad_x D|`` maps.

  Same layout as ``tfadvgan.images.grid`` (so it lines up with a grid of the inputs).
  """
  x = _check_images(images)
  errors.check(x.ndim == 4, f"gradient_grid needs [N, H, W, C] images; got shape {x.shape}.")
  maps = gradient_maps(input_gradients(d_fn, x, labels, batch_size))
  return images_lib.grid((2.0 * maps - 1.0)[..., None].astype(np.float32), columns=columns)


def histogram_image(counts, height=100, bar_width=4, log=True):
  """A simple uint8 ``[height, bins * (bar_width + 1) + 1, 1]`` bar plot (black bars on white).

  Bar heights are ``log1p(count)`` (``log=True``) or counts, scaled to the tallest bar.
  """
  c = np.asarray(counts, np.float64)
  c = np.log1p(c) if log else c
  peak = c.max() if c.size and c.max() > 0 else 1.0
  heights = np.rint(c / peak * height).astype(int)
  img = np.full((height, len(c) * (bar_width + 1) + 1, 1), 255, np.uint8)
  img[-1, :] = 128  # grey baseline under empty bins
  for i, h in enumerate(heights):
    if h > 0:
      left = 1 + i * (bar_width + 1)
      img[height - h:, left:left + bar_width] = 0
  return img


# ------------------------------------------------------------------------------ 5. confidence
@gin.configurable(denylist=["d_fn", "images", "labels"])
def confidence_real_vs_adversarial(d_fn, images, epsilon=1.0 / 255, labels=None, attack_loss="bce",
                                   clip=True, batch_size=256):
  """AS-GAN Fig. 10a: mean ``sigmoid(D(x))`` on reals and on their FGSM examples.

  ``x_adv = x + epsilon * sign(grad softplus(-D(x)))`` (AS-GAN Eq. 7 on reals: increases D's loss).

  Returns:
    ``{"real": mean sigmoid(D(x)), "adversarial": mean sigmoid(D(x_adv)), "epsilon": epsilon}``.
  """
  eps = _check_epsilons([epsilon])[0]
  x = _check_images(images)
  y = _as_array(labels, np.int32, "labels")
  _check_pair(x, y)
  _probe(d_fn, x, y)
  loss = _attack_loss(True, attack_loss)

  @tf.function
  def run(xb, yb):
    logit_fn = _logit_fn(d_fn, yb)
    x_adv = attacks.fgsm(xb, lambda v: loss(logit_fn(v)), eps, clip=clip)
    return {"clean": tf.sigmoid(logit_fn(xb)), "adv": tf.sigmoid(logit_fn(x_adv))}

  out = _run_batched(run, [x, y], batch_size)
  return {"real": _mean(out["clean"]), "adversarial": _mean(out["adv"]),
          "epsilon": eps}


# ----------------------------------------------------------------------------- 6. W estimate
def wasserstein_estimate(d_fn, real, fake, real_labels=None, fake_labels=None, batch_size=256):
  """DAT Figs. 4-7: ``mean D(x_r) - mean D(x_f)`` on raw logits (a float)."""
  logits_real = logits(d_fn, real, real_labels, batch_size)
  logits_fake = logits(d_fn, fake, fake_labels, batch_size)
  return float(np.mean(logits_real.astype(np.float64)) - np.mean(logits_fake.astype(np.float64)))


# ---------------------------------------------------------------- 7. per batch, during training
BATCH_KEYS = ("d_acc_real", "d_acc_real_fgsm", "d_acc_fake", "grad_l1", "grad_sparsity",
              "conf_real", "conf_real_adv", "wdist", "d_real_logit", "d_fake_logit")


class BatchDiagnostics:
  """One-batch diagnostics of a GAN, compiled once (``tf.function`` with an input signature).

  ``__call__(real_batch, labels=None, epsilon=1/255, seed=0)`` returns a dict of Python floats
  (keys ``BATCH_KEYS``): D accuracy on reals clean / under FGSM (BCE loss, epsilon on the [-1, 1]
  scale), D accuracy on fakes, mean per-example L1 norm and sparsity of ``grad_x D(x_r)``,
  ``mean sigmoid(D)`` on reals and their FGSM examples, ``mean D(x_r) - mean D(x_f)`` and the two
  mean logits. Fakes come from ``gan.sampler()`` in inference mode with stateless noise from
  ``seed`` (conditional runs: the real labels). Batch size, epsilon and seed are tensor arguments,
  so calls never retrace. The FGSM step uses the chain rule on the logit gradient
  (``grad softplus(-t) = -sigmoid(-t) grad t``), so one backward pass serves both the attack and
  the gradient statistics.
  """

  def __init__(self, gan, zero_tol=1e-6, training=False, clip=None):
    # Only the networks are kept (not `gan`), so the per-GAN cache below does not keep it alive.
    self._discriminator = gan.discriminator
    self._generator = gan.sampler()
    self.conditional = bool(getattr(gan, "conditional", False))
    self.training = bool(training)
    self.zero_tol = float(zero_tol)
    self._clip = clip
    self._fn = None

  def _build(self, shape):
    discriminator = self._discriminator
    generator = self._generator
    clip = (len(shape) == 3) if self._clip is None else bool(self._clip)
    conditional = self.conditional
    training = self.training
    zero_tol = self.zero_tol
    latent_dim = int(generator.latent_dim)
    reduce_axes = list(range(1, len(shape) + 1))

    def d(x, y):
      return _logits(discriminator(x, y if conditional else None, training=training))

    def compute(real, labels, seed, epsilon):
      seeds = rng.split_seed(seed, 2)
      logits_real, g = ops.input_gradient(lambda v: d(v, labels), real)
      bce_grad = -tf.reshape(tf.sigmoid(-logits_real), [-1] + [1] * len(shape)) * g
      x_adv = attacks.fgsm(real, None, epsilon, clip=clip, grad=bce_grad)
      logits_adv = d(x_adv, labels)
      batch = tf.shape(real)[0]
      z = rng.normal(tf.stack([batch, latent_dim]), seeds[0])
      fake_labels = labels if conditional else None
      fake = generator(z, fake_labels, training=False)
      logits_fake = d(fake, fake_labels)
      mean = tf.reduce_mean
      f32 = lambda b: tf.cast(b, tf.float32)
      return {
          "d_acc_real": mean(f32(logits_real > 0)),
          "d_acc_real_fgsm": mean(f32(logits_adv > 0)),
          "d_acc_fake": mean(f32(logits_fake < 0)),
          "grad_l1": mean(tf.reduce_sum(tf.abs(g), axis=reduce_axes)),
          "grad_sparsity": mean(f32(tf.abs(g) <= zero_tol)),
          "conf_real": mean(tf.sigmoid(logits_real)),
          "conf_real_adv": mean(tf.sigmoid(logits_adv)),
          "wdist": mean(logits_real) - mean(logits_fake),
          "d_real_logit": mean(logits_real),
          "d_fake_logit": mean(logits_fake),
      }

    signature = [tf.TensorSpec([None] + list(shape), tf.float32),
                 tf.TensorSpec([None], tf.int32),
                 tf.TensorSpec([2], tf.int32),
                 tf.TensorSpec([], tf.float32)]
    self._shape = tuple(shape)
    self._fn = tf.function(compute, input_signature=signature)

  @property
  def tracing_count(self):
    """How many times the inner function was traced (1 after any number of calls)."""
    return 0 if self._fn is None else self._fn.experimental_get_tracing_count()

  def __call__(self, real_batch, labels=None, epsilon=1.0 / 255, seed=0):
    real = tf.cast(tf.convert_to_tensor(real_batch), tf.float32)
    errors.check(real.shape.rank is not None and real.shape.rank >= 2 and real.shape[0] != 0,
                 f"batch_diagnostics needs a [B, ...] batch; got shape {real.shape}.")
    if self._fn is None:
      self._build(tuple(real.shape[1:]))
    errors.check(tuple(real.shape[1:]) == self._shape,
                 f"batch_diagnostics was built for inputs {self._shape}; got {tuple(real.shape)}.")
    if labels is None:
      errors.check(not self.conditional,
                   "This run is class-conditional: batch_diagnostics needs the batch's labels.")
      labels = tf.zeros(tf.shape(real)[:1], tf.int32)
    labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    eps = _check_epsilons([epsilon])[0]
    seed_t = tf.constant([int(seed), 4242], tf.int32)
    out = self._fn(real, labels, seed_t, tf.constant(eps, tf.float32))
    return {k: float(v.numpy()) for k, v in out.items()}


_BATCH_CACHE = weakref.WeakKeyDictionary()


def compiled_batch_diagnostics(gan, zero_tol=1e-6, training=False):
  """The ``BatchDiagnostics`` cached for ``gan`` (built on first use; one per setting)."""
  per_gan = _BATCH_CACHE.setdefault(gan, {})
  key = (float(zero_tol), bool(training))
  if key not in per_gan:
    per_gan[key] = BatchDiagnostics(gan, zero_tol=zero_tol, training=training)
  return per_gan[key]


@gin.configurable(denylist=["gan", "real_batch", "labels", "seed"])
def batch_diagnostics(gan, real_batch, labels=None, epsilon=1.0 / 255, seed=0, zero_tol=1e-6,
                      training=False):
  """Scalars for TensorBoard from one real batch; see ``BatchDiagnostics`` (compiled once per GAN).

  Args:
    gan: a ``GAN``.
    real_batch: ``[B, ...]`` real samples in [-1, 1].
    labels: ``[B]`` labels (required for conditional runs; also the fakes' labels).
    epsilon: FGSM budget on the [-1, 1] scale.
    seed: int seed of the fakes' noise.
    zero_tol: sparsity threshold on ``|grad|``.
    training: discriminator mode (default inference).

  Returns:
    dict of Python floats, keys ``BATCH_KEYS``.
  """
  return compiled_batch_diagnostics(gan, zero_tol, training)(real_batch, labels, epsilon, seed)
