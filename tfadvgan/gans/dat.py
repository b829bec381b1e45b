"""DAT: direct adversarial training (../shared/papers/direct_adversarial_training.txt, Eqs. 2,
8-10, Algorithm 1; its authors' release, iceli1007/DAT-GAN, `advtrain_step`).

D maximises (Eq. 8) lambda_1 * [g1(D(x_r)) + g2(D(x_f))] + lambda_2 * [g1(D(x_r + d_r)) +
g2(D(x_f + d_f))], with one targeted step each (Eqs. 9-10), reals toward the fakes' batch mean and
fakes toward the reals': d_r = -eps * step(grad_x |g1(D(x_r)) - mean g1(D(x_f))|), and d_f alike.

Readings (docs/readings/dat.md, "DAT: readings and decisions", with a table of every difference from
the release): `objective` per_example (Eq. 9) | batch_mean (the release); `value` loss (g1/g2) |
logit (the release); `direction` sign | raw (Eq. 10; at eps 1 the release's clamp) | l2; `clip`
both | fake (the release) | none. Batch means are over the *global* batch; under per-replica XLA
each D update runs in two compiled pieces around their all-reduce (`global_means.GlobalMeans`).
Penalties apply on top, as in the baselines. The attack gradients come from the clean pass's tape.
"""

import gin
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan.gans import base
from tfadvgan.gans import global_means

CLIPS = {"both": (True, True), "fake": (False, True), "none": (False, False)}  # (reals, fakes)
VALUES = ("loss", "logit")
KNOBS = (
    errors.Knob("epsilon", float, low=0),
    errors.Knob("direction", attacks.DIRECTIONS),
    errors.Knob("clean_weight", float, low=0),
    errors.Knob("adv_weight", float, low=0),
    errors.Knob("objective", tuple(sorted(attacks.OBJECTIVES))),
    errors.Knob("value", tuple(sorted(VALUES))),
    errors.Knob("reuse_clean_pass", bool),
)


@gin.configurable
class DAT(base.GAN, global_means.GlobalMeans):
  """GAN whose D objective adds lambda_2-weighted terms on targeted-attacked reals and fakes.

  Args:
    epsilon: L-inf radius on the [-1, 1] image scale (the paper gives no value; see
      docs/readings/dat.md).
    direction: the attack's direction from the gradient: "sign" (one-step PGD), "raw" (Eq. 10's
      -eps * grad, clipped to the ball) or "l2" (the gradient scaled to L2 norm eps).
    clean_weight: lambda_1 on the clean terms (0: the release, D trains on attacked samples
      only).
    adv_weight: lambda_2 on the attacked terms (0 reproduces the baseline update exactly).
    clip: which attacked images are clipped to [-1, 1] before D sees them: "both" (True), "fake"
      (the release) or "none" (False; the 2-D toy data).
    objective: "per_example" (Eq. 9: |v(x_i) - m| per example) or "batch_mean" (the release:
      |mean_i v(x_i) - m|, one common sign and a 1/m on every example).
    value: the attacked value, "loss" (g1 on reals, g2 on fakes, Eq. 9) or "logit" (D's raw
      output, the release).
    reuse_clean_pass: take the attack gradients from the clean pass's tape (default) instead of
      fresh forward/backward passes; the perturbations are the same (docs/readings/dat.md, "DAT:
      readings and decisions", the clean pass reused).
    **kwargs: `GAN` arguments (loss, penalty, n_dis = the paper's "It", ...).
  """

  method_name = "dat"

  def __init__(self, generator, discriminator, epsilon=0.01, direction="sign", clean_weight=1.0,
               adv_weight=1.0, clip="both", objective="per_example", value="loss",
               reuse_clean_pass=True, **kwargs):
    super().__init__(generator, discriminator, **kwargs)
    errors.set_knobs(self, "DAT", KNOBS, locals())
    clip = {True: "both", False: "none"}[clip] if isinstance(clip, bool) else clip
    self.clip_real, self.clip_fake = errors.choose("DAT.clip", clip, CLIPS)
    self.clip = self.clip_real or self.clip_fake  # clips anything (training's 2-D data check)
    attacks.check_bindings("targeted_one_step")
    for name in ("dat_adv_loss", "dat_target_real", "dat_target_fake"):
      self.add_tracker(name)

  def values(self):
    """(v_r, v_f): the attacked value on reals and on fakes."""
    if self.value == "logit":
      return tf.identity, tf.identity
    return self.loss_fn.g1, self.loss_fn.g2

  def mean_sums(self, real_logits, fake_logits):
    """This shard's [sums..., counts...] of (target_real = mean v_r(D(x_f)), target_fake =
    mean v_f(D(x_r)), mean v_r(D(x_r)), mean v_f(D(x_f))); constants."""
    v_r, v_f = self.values()
    real_logits, fake_logits = tf.stop_gradient(real_logits), tf.stop_gradient(fake_logits)
    n_real = tf.cast(tf.size(real_logits), real_logits.dtype)
    n_fake = tf.cast(tf.size(fake_logits), fake_logits.dtype)
    return tf.stack([tf.reduce_sum(v_r(fake_logits)), tf.reduce_sum(v_f(real_logits)),
                     tf.reduce_sum(v_r(real_logits)), tf.reduce_sum(v_f(fake_logits)),
                     n_fake, n_real, n_real, n_fake])

  def means(self, real_logits, fake_logits):
    """`mean_sums` over the global batch: given (per-replica XLA) or all-reduced here."""
    given = self.given_means()
    if given is not None:
      return tf.unstack(given)
    sums = self.mean_sums(real_logits, fake_logits)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
      sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
    return tf.unstack(sums[:4] / sums[4:])

  def perturbations(self, real, labels, fake, fake_labels, real_logits, fake_logits, grads=None):
    """(x_r + d_r, x_f + d_f, targets): each side pulled toward the other side's batch mean.

    `grads` = (grad_real, grad_fake) of `attacks.targeted_gap` from the clean pass's tape
    (`clean_outputs`); None takes them from fresh passes through D (the reference).
    """
    v_r, v_f = self.values()
    target_real, target_fake, mean_real, mean_fake = self.means(real_logits, fake_logits)
    grad_real, grad_fake = grads or (None, None)
    common = dict(epsilon=self.epsilon, direction=self.direction, objective=self.objective)
    real_adv = attacks.targeted_one_step(
        real, lambda x: v_r(self.discriminate(x, labels)["logits"]), target_real,
        clip=self.clip_real, grad=grad_real, mean=mean_real, **common)
    fake_adv = attacks.targeted_one_step(
        fake, lambda x: v_f(self.discriminate(x, fake_labels)["logits"]), target_fake,
        clip=self.clip_fake, grad=grad_fake, mean=mean_fake, **common)
    return (tf.stop_gradient(real_adv), tf.stop_gradient(fake_adv), target_real, target_fake)

  def clean_outputs(self, batch):
    """The clean pass, watched so that the attack gradients come from its own backward pass.

    At delta = 0 the attack gradient is that of `attacks.targeted_gap` on this pass's values: the
    same ops as a fresh pass (D in training mode on the same batch), without the fresh forward.
    The perturbations ride along in `real_out["dat"]`.
    """
    if self.adv_weight == 0.0 or not self.reuse_clean_pass:
      return super().clean_outputs(batch)
    real, labels, fake, fake_labels, _ = batch
    v_r, v_f = self.values()
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch([real, fake])
      real_out, fake_out = super().clean_outputs(batch)
      real_logits, fake_logits = real_out["logits"], fake_out["logits"]
      t_r, t_f, mean_r, mean_f = self.means(real_logits, fake_logits)
      gaps = (attacks.targeted_gap(v_r(real_logits), t_r, self.objective, mean_r)
              + attacks.targeted_gap(v_f(fake_logits), t_f, self.objective, mean_f))
    grads = tape.gradient(gaps, [real, fake],
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    adv = self.perturbations(real, labels, fake, fake_labels, real_logits, fake_logits, grads=grads)
    return dict(real_out, dat=adv), fake_out

  def discriminator_terms(self, batch, real_out, fake_out):
    """lambda_1 * (the clean terms) + lambda_2 * (the terms on the attacked reals and fakes)."""
    clean = 0.0  # lambda_1 = 0 (the release): no clean terms, no backward through them
    if self.clean_weight:
      clean = self.clean_weight * super().discriminator_terms(batch, real_out, fake_out)
    if self.adv_weight == 0.0:
      return clean
    real, labels, fake, fake_labels, _ = batch
    real_adv, fake_adv, target_real, target_fake = real_out.get("dat") or self.perturbations(
        real, labels, fake, fake_labels, real_out["logits"], fake_out["logits"])
    adv = (self.loss_fn.d_real(self.discriminate(real_adv, labels)["logits"])
           + self.loss_fn.d_fake(self.discriminate(fake_adv, fake_labels)["logits"]))
    self.track(dat_adv_loss=tf.reduce_mean(adv), dat_target_real=target_real,
               dat_target_fake=target_fake)
    return clean + self.adv_weight * adv

  # ----------------------------------------------------------------- per-replica XLA
  def target_sums(self, real, labels, fake, fake_labels):
    """`mean_sums` on this replica's shard, from a clean pass that leaves D's state as it was
    (the D loss runs that pass again)."""
    return self.mean_sums(*self.keeping_d_state(lambda: (
        self.discriminate(real, labels)["logits"], self.discriminate(fake, fake_labels)["logits"])))

  def discriminator_gradients(self, real, labels, fake, fake_labels, step_seed, sources=None,
                              make_real=None):
    if not self.replica_jit or self.adv_weight == 0.0:
      return super().discriminator_gradients(real, labels, fake, fake_labels, step_seed,
                                             sources=sources, make_real=make_real)
    errors.check(sources is None and make_real is None,
                 "DAT's split per-replica step takes no input-gradient sources.")
    return self.gradients_with_global_means(("dat_target_sums", "dat_discriminator_gradients"),
                                            self.target_sums, real, labels, fake, fake_labels,
                                            step_seed)
