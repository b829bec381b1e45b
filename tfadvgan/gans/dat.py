"""DAT: direct adversarial training (../shared/papers/direct_adversarial_training.txt, Eqs. 2,
8-10, Algorithm 1).

With the loss in the (g1, g2) form of Eq. 2 (D maximises E[g1(D(x_r))] + E[g2(D(x_f))]), each D
update adds attacked terms to the objective (Eq. 8, Algorithm 1 line 10):

  lambda_1 * [g1(D(x_r)) + g2(D(x_f))] + lambda_2 * [g1(D(x_r + d_r)) + g2(D(x_f + d_f))]

with targeted one-step perturbations in an L-inf ball of radius eps (Eq. 9-10):

  d_r = -eps * step(grad_x |g1(D(x_r)) - mean_batch g1(D(x_f))|)   reals move toward the fakes
  d_f = -eps * step(grad_x |g2(D(x_f)) - mean_batch g2(D(x_r))|)   fakes move toward the reals

Readings (BUILD_NOTES.md, "DAT (issue 5)"): Eq. 9's pairing (each sample moves toward the other
class; Algorithm 1 swaps g1 and g2); `step` = sign (default, "one-step PGD") | raw (Eq. 10) | l2;
batch means over the *global* batch. Penalties and clipping apply on top, as in the baselines. The
attack gradients come from the clean pass's own tape (`reuse_clean_pass`): the same perturbations
as fresh passes, without two extra passes. Under per-replica XLA each D update runs in two compiled
pieces around the targets' all-reduce (`GAN.gradients_with_global_means`; BUILD_NOTES, "Decisions").
"""

import gin
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan.gans import base


@gin.configurable
class DAT(base.GAN):
  """GAN whose D objective adds lambda_2-weighted terms on targeted-attacked reals and fakes.

  Args:
    epsilon: L-inf radius on the [-1, 1] image scale (the paper gives no value; see BUILD_NOTES).
    step: "sign" (one-step PGD), "raw" (Eq. 10's -eps * grad, clipped to the ball) or "l2".
    lambda_clean: lambda_1 on the clean terms.
    lambda_adv: lambda_2 on the attacked terms (0 reproduces the baseline update exactly).
    clip: clip attacked images to [-1, 1] (turn off for the 2-D toy data).
    reuse_clean_pass: take the attack gradients from the clean pass's tape (default) instead of
      fresh forward/backward passes; the perturbations are the same (BUILD_NOTES, "DAT: the clean
      pass reused").
    **kwargs: `GAN` arguments (loss, penalty, n_dis = the paper's "It", ...).
  """

  method_name = "dat"
  targeted_attack = True

  def __init__(self, generator, discriminator, epsilon=0.01, step="sign", lambda_clean=1.0,
               lambda_adv=1.0, clip=True, reuse_clean_pass=True, **kwargs):
    super().__init__(generator, discriminator, **kwargs)
    epsilon = errors.check_float("DAT.epsilon", epsilon, low=0)
    errors.check(step in attacks.STEPS,
                 f"Unknown DAT.step {step!r}. Choose one of: {', '.join(attacks.STEPS)}.")
    lambda_clean = errors.check_float("DAT.lambda_clean", lambda_clean, low=0)
    lambda_adv = errors.check_float("DAT.lambda_adv", lambda_adv, low=0)
    attacks.check_bindings("targeted_one_step")
    self.epsilon = float(epsilon)
    self.step = step
    self.lambda_clean = float(lambda_clean)
    self.lambda_adv = float(lambda_adv)
    self.clip = bool(clip)
    self.reuse_clean_pass = bool(reuse_clean_pass)
    for name in ("dat_adv_loss", "dat_target_real", "dat_target_fake"):
      self.add_tracker(name)

  def targets(self, real_logits, fake_logits):
    """(mean g1(D(x_f)), mean g2(D(x_r))) over the global batch, constants for the attack."""
    given = self.given_means()  # per-replica XLA: all-reduced before the compiled piece
    if given is not None:
      return given[0], given[1]
    return (base.global_mean(self.loss_fn.g1(tf.stop_gradient(fake_logits))),
            base.global_mean(self.loss_fn.g2(tf.stop_gradient(real_logits))))

  def perturbations(self, real, labels, fake, fake_labels, real_logits, fake_logits, grads=None):
    """(x_r + d_r, x_f + d_f): each side pulled toward the other side's global batch mean.

    `grads` = (grad_real, grad_fake) of sum |g(D(x)) - target| from the clean pass's tape
    (`clean_outputs`); None takes them from fresh passes through D (the reference).
    """
    g1, g2 = self.loss_fn.g1, self.loss_fn.g2
    target_real, target_fake = self.targets(real_logits, fake_logits)
    grad_real, grad_fake = grads or (None, None)
    real_value = lambda x: g1(self.discriminate(x, labels)["logits"])  # noqa: E731
    fake_value = lambda x: g2(self.discriminate(x, fake_labels)["logits"])  # noqa: E731
    real_adv = attacks.targeted_one_step(real, real_value, target_real, self.epsilon, self.step,
                                         clip=self.clip, grad=grad_real)
    fake_adv = attacks.targeted_one_step(fake, fake_value, target_fake, self.epsilon, self.step,
                                         clip=self.clip, grad=grad_fake)
    return (tf.stop_gradient(real_adv), tf.stop_gradient(fake_adv), target_real, target_fake)

  def clean_outputs(self, batch):
    """The clean pass, watched so that the attack gradients come from its own backward pass.

    At delta = 0, grad_x |g(D(x)) - m| is sign(g(D(x)) - m) * grad_x g(D(x)), which this pass
    already holds: the same ops as a fresh pass (D in training mode on the same batch), without
    the fresh forward. The perturbations ride along in `real_out["dat"]`.
    """
    if self.lambda_adv == 0.0 or not self.reuse_clean_pass:
      return super().clean_outputs(batch)
    real, labels, fake, fake_labels, _ = batch
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch([real, fake])
      real_out, fake_out = super().clean_outputs(batch)
      real_logits, fake_logits = real_out["logits"], fake_out["logits"]
      target_real, target_fake = self.targets(real_logits, fake_logits)
      target_real = tf.stop_gradient(tf.cast(target_real, real.dtype))
      target_fake = tf.stop_gradient(tf.cast(target_fake, fake.dtype))
      gap_real = tf.abs(self.loss_fn.g1(real_logits) - target_real)
      gap_fake = tf.abs(self.loss_fn.g2(fake_logits) - target_fake)
      gaps = tf.reduce_sum(gap_real) + tf.reduce_sum(gap_fake)  # real and fake: separate passes
    grads = tape.gradient(gaps, [real, fake],
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    adv = self.perturbations(real, labels, fake, fake_labels, real_logits, fake_logits, grads=grads)
    return dict(real_out, dat=adv), fake_out

  def discriminator_terms(self, batch, real_out, fake_out):
    """lambda_1 * (the clean terms) + lambda_2 * (the terms on the attacked reals and fakes)."""
    clean = self.lambda_clean * super().discriminator_terms(batch, real_out, fake_out)
    if self.lambda_adv == 0.0:
      return clean
    real, labels, fake, fake_labels, _ = batch
    real_adv, fake_adv, target_real, target_fake = real_out.get("dat") or self.perturbations(
        real, labels, fake, fake_labels, real_out["logits"], fake_out["logits"])
    adv = (self.loss_fn.d_real(self.discriminate(real_adv, labels)["logits"])
           + self.loss_fn.d_fake(self.discriminate(fake_adv, fake_labels)["logits"]))
    self.track(dat_adv_loss=tf.reduce_mean(adv), dat_target_real=target_real,
               dat_target_fake=target_fake)
    return clean + self.lambda_adv * adv

  # ----------------------------------------------------------------- per-replica XLA
  def target_sums(self, real, labels, fake, fake_labels):
    """[sum g1(D(fake)), sum g2(D(real)), #fake, #real] on this replica's shard, from a clean pass
    that leaves D's state as it was (the D loss runs that pass again)."""
    real_logits, fake_logits = self.keeping_d_state(lambda: (
        self.discriminate(real, labels)["logits"], self.discriminate(fake, fake_labels)["logits"]))
    g1_fake = self.loss_fn.g1(tf.stop_gradient(fake_logits))
    g2_real = self.loss_fn.g2(tf.stop_gradient(real_logits))
    count = lambda t: tf.cast(tf.size(t), t.dtype)  # noqa: E731
    return tf.stack([tf.reduce_sum(g1_fake), tf.reduce_sum(g2_real), count(g1_fake),
                     count(g2_real)])

  def discriminator_gradients(self, real, labels, fake, fake_labels, step_seed, sources=None,
                              make_real=None):
    if not self.replica_jit or self.lambda_adv == 0.0:
      return super().discriminator_gradients(real, labels, fake, fake_labels, step_seed,
                                             sources=sources, make_real=make_real)
    errors.check(sources is None and make_real is None,
                 "DAT's split per-replica step takes no input-gradient sources.")
    return self.gradients_with_global_means(("dat_target_sums", "dat_discriminator_gradients"),
                                            self.target_sums, real, labels, fake, fake_labels,
                                            step_seed)
