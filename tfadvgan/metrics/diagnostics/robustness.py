"""Robustness of a discriminator, its auxiliary-classifier head or an external classifier: accuracy
and confidence under L-inf attacks (AS-GAN Table 2 and Fig. 10a, Rob-GAN Table 1), and the local
Lipschitz value (Rob-GAN Fig. 1).

``under_attack`` is the one harness: input checks, a compiled clean / attacked pair, and the loop
over epsilons; ``d_accuracy``, ``classifier_accuracy_under_pgd`` and
``confidence_real_vs_adversarial`` each give it their attack and what they count.

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
  ``attacks.default_pgd_step_size`` (Madry et al.). **Rob-GAN Table 1 PGD** follows the authors'
  evaluation code (``acc_under_attack.py`` / ``miscs/pgd.py``): no random start, 20 steps of
  ``epsilon / 5`` on the cross entropy of the AC head, images in [-1, 1].
"""
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan import losses as losses_lib
from tfadvgan import rng
from tfadvgan.metrics.diagnostics import batching

DEFAULT_EPSILONS = (0.0, 0.5 / 255, 1.0 / 255, 2.0 / 255, 4.0 / 255)
ROBGAN_EPSILONS = (0.0, 0.02, 0.04, 0.08)
ATTACKS = ("none", "fgsm", "pgd")
ATTACK_LOSSES = ("bce", "logit")


def under_attack(model_fn, images, labels, epsilons, attack, score, step_size, seed=(0, 0),
                 extract=batching.logits_of, labels_for=None, zero_is_clean=True,
                 batch_size=256):
  """Means of per-example scores of a model on clean and on attacked inputs, per epsilon.

  Args:
    model_fn: ``model_fn(x, labels) -> output`` (a discriminator or a classifier).
    images: ``[N, ...]`` inputs.
    labels: optional ``[N]`` int labels, passed to ``model_fn``.
    epsilons: L-inf budgets (checked: finite, >= 0).
    attack: ``attack(f, x, labels, epsilon, step_size, seed) -> x_adv`` where ``f(x)`` is the
      extracted output on ``x`` (traced), or None: every epsilon gives the clean scores.
    score: ``score(f, x_scored, labels, x) -> {name: [B] values}``; ``x_scored`` is ``x`` (clean)
      or the attack's output.
    step_size: ``epsilon -> step size`` of the attack.
    seed: ``(int, salt)`` stateless seed of the attack's randomness.
    extract: picks the output ``f`` returns from ``model_fn``'s (and the probe checks it exists).
    labels_for: the caller's name when the true labels are required.
    zero_is_clean: epsilon 0 gives the clean scores (computed once) instead of an attack of size 0.
    batch_size: batch size.

  Returns:
    ``{epsilon: {name: mean score}}`` (Python floats).
  """
  eps_list = batching.check_epsilons(epsilons)
  x, y = batching.checked_inputs(model_fn, images, labels, extract, labels_for)

  @tf.function
  def attacked(xb, yb, eps, alpha, seed_t):
    f = lambda v: extract(model_fn(v, yb))  # noqa: E731
    return score(f, attack(f, xb, yb, eps, alpha, seed_t), yb, xb)

  @tf.function
  def clean(xb, yb):
    return score(lambda v: extract(model_fn(v, yb)), xb, yb, xb)

  def means(fn, extra=()):
    return {k: batching.mean(v) for k, v in batching.run_batched(fn, [x, y], batch_size,
                                                                   extra).items()}

  results, clean_means = {}, None
  for eps in eps_list:
    if attack is None or (zero_is_clean and eps == 0.0):
      clean_means = clean_means or means(clean)
      results[eps] = clean_means
      continue
    extra = (tf.constant(eps, tf.float32), tf.constant(float(step_size(eps)), tf.float32),
             tf.constant(list(seed), tf.int32))
    results[eps] = means(attacked, extra)
  return results


def _attack_loss(real, attack_loss):
  """Per-example loss (of logits) that an attack increases to push samples to the wrong side."""
  errors.check(attack_loss in ATTACK_LOSSES,
               f"attack_loss must be one of {', '.join(ATTACK_LOSSES)}; got {attack_loss!r}.")
  if attack_loss == "bce":
    return (lambda t: tf.nn.softplus(-t)) if real else tf.nn.softplus
  return (lambda t: -t) if real else (lambda t: t)


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
    step_size: PGD step; None means ``attacks.default_pgd_step_size(epsilon, pgd_steps)``.
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
  loss = _attack_loss(real, attack_loss)
  sign = 1.0 if real else -1.0

  def perturb(f, xb, yb, eps, alpha, seed_t):
    del yb
    if attack == "fgsm":
      return attacks.fgsm(xb, lambda v: loss(f(v)), eps, clip=clip)
    return attacks.pgd(xb, lambda v: loss(f(v)), eps, pgd_steps, alpha,
                       random_start=random_start, seed=seed_t, clip=clip)

  def correct(f, xb, yb, x_clean):
    del yb, x_clean
    return {"correct": tf.cast(sign * (f(xb) - threshold) > 0, tf.float32)}

  def alpha(eps):
    return attacks.default_pgd_step_size(eps, pgd_steps) if step_size is None else step_size

  results = under_attack(d_fn, images, labels, epsilons, None if attack == "none" else perturb,
                         correct, alpha, seed=(seed, rng.DIAGNOSTICS_PGD), batch_size=batch_size)
  return {eps: r["correct"] for eps, r in results.items()}


def _class_correct(f, xb, yb, x_clean):
  del x_clean
  pred = tf.argmax(f(xb), axis=-1, output_type=tf.int32)
  return {"correct": tf.cast(tf.equal(pred, yb), tf.float32)}


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

  def perturb(f, xb, yb, eps, alpha, seed_t):
    def xent(v):
      return losses_lib.class_cross_entropy(f(v), yb)
    return attacks.pgd(xb, xent, eps, steps, alpha, random_start=random_start, seed=seed_t,
                       clip=clip)

  results = under_attack(
      class_logits_fn, images, labels, epsilons, perturb, _class_correct,
      lambda eps: eps / 5.0 if step_size is None else step_size,
      seed=(seed, rng.DIAGNOSTICS_CLASS_PGD), extract=batching.class_logits_of,
      labels_for="classifier_accuracy_under_pgd", batch_size=batch_size)
  return {eps: r["correct"] for eps, r in results.items()}


@gin.configurable(denylist=["d_fn", "images", "labels"])
def confidence_real_vs_adversarial(d_fn, images, epsilon=1.0 / 255, labels=None, attack_loss="bce",
                                   clip=True, batch_size=256):
  """AS-GAN Fig. 10a: mean ``sigmoid(D(x))`` on reals and on their FGSM examples.

  ``x_adv = x + epsilon * sign(grad softplus(-D(x)))`` (AS-GAN Eq. 7 on reals: increases D's loss).

  Returns:
    ``{"real": mean sigmoid(D(x)), "adversarial": mean sigmoid(D(x_adv)), "epsilon": epsilon}``.
  """
  eps = batching.check_epsilons([epsilon])[0]
  loss = _attack_loss(True, attack_loss)

  def perturb(f, xb, yb, eps, alpha, seed_t):
    del yb, alpha, seed_t
    return attacks.fgsm(xb, lambda v: loss(f(v)), eps, clip=clip)

  def confidence(f, x_adv, yb, xb):
    del yb
    return {"clean": tf.sigmoid(f(xb)), "adv": tf.sigmoid(f(x_adv))}

  out = under_attack(d_fn, images, labels, [eps], perturb, confidence, lambda e: 0.0,
                     zero_is_clean=False, batch_size=batch_size)[eps]
  return {"real": out["clean"], "adversarial": out["adv"], "epsilon": eps}


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
  x, y = batching.checked_inputs(class_logits_fn, images, labels, batching.class_logits_of,
                                 labels_for="local_lipschitz")

  def make():
    @tf.function
    def norms(xb, yb):
      with tf.GradientTape() as tape:
        tape.watch(xb)
        xent = losses_lib.class_cross_entropy(
            batching.class_logits_of(class_logits_fn(xb, yb)), yb)
      g = tape.gradient(xent, xb)  # per example: each CE depends only on its own input
      return {"llv": tf.norm(tf.reshape(g, [tf.shape(g)[0], -1]), axis=1)}
    return norms

  llv = batching.run_batched(batching.compiled(class_logits_fn, ("local_lipschitz",), make),
                             [x, y], batch_size)["llv"].astype(np.float64)
  return {"mean": float(np.mean(llv)), "median": float(np.median(llv)), "max": float(np.max(llv)),
          "per_example": llv}
