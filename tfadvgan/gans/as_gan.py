"""AS-GAN: adversarial symmetric GANs (../shared/papers/as_gan.txt, Sec. 3, Algorithm 1).

Per train step, for each of the `n_dis` D updates:
  1. the normal D update on real and fake (`GAN.discriminator_step`);
  2. x_hat = x + eps * sign(grad_x L_D(x)) (Eq. 7 with L_D = -V), the input gradient taken from the
     same tape as step 1's weight gradient, i.e. at the weights *before* that update: no extra pass;
  3. a second D update on x_hat, through the method's loss: the real term only (the authors'
     release) or real + fake (Eq. 10);
then the G update (unchanged).

Knobs (gin `ASGAN.*`): `epsilon` on the [-1, 1] image scale (1/255 by default, as the released code
applies it; 1/255 of the [-1, 1] range is half a grey level), a warm-up at eps = 0 then a constant
or linear ramp (the paper recommends eps = 0 early on), the release's per-epoch warm-up (eps = 0 for
the first `epoch_warmup_steps` train steps of every epoch of `steps_per_epoch`), clipping x_hat to
[-1, 1] (default on; the release does not clip), the attack (`fgsm`; `pgd` with k steps from the
updated weights; `gaussian`, the random-direction ablation of Figs. 4-5 with the same per-pixel
budget; eps = 0 is the "D updated twice on the same data" control of Fig. 5). D stays in training
mode for the attack pass, as in the paper (for `pgd` every attack step therefore also updates BN
moving statistics).
"""

import gin
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan.gans import base
from tfadvgan.gans import gradients as gradients_lib
from tfadvgan import rng

ATTACKS = ("fgsm", "pgd", "gaussian")
SECOND_UPDATE = ("real", "real_fake")
KNOBS = (
    errors.Knob("epsilon", float, low=0),
    errors.Knob("warmup_steps", int, low=0),
    errors.Knob("ramp_steps", int, low=0),
    errors.Knob("epoch_warmup_steps", int, low=0),
    errors.Knob("steps_per_epoch", int, low=1, allow_none=True),
    errors.Knob("attack", ATTACKS),
    errors.Knob("second_update", SECOND_UPDATE),
    errors.Knob("pgd_steps", int, low=1),
    errors.Knob("step_size", float, low=0, allow_none=True),
    errors.Knob("random_start", bool),
    errors.Knob("clip", bool),
)


@gin.configurable
class ASGAN(base.GAN):
  """GAN whose D gets a second update on FGSM-perturbed reals after each normal update.

  Args:
    epsilon: perturbation size on the [-1, 1] scale (after warm-up / ramp).
    warmup_steps: train steps (G steps) at eps = 0 before the perturbation starts.
    ramp_steps: after warm-up, eps grows linearly from 0 to `epsilon` over this many steps
      (0: jump straight to `epsilon`).
    epoch_warmup_steps: eps = 0 for the first this many train steps of every epoch (the release:
      300, `if i < 300: p = 0` with i the iteration within the epoch); 0: off.
    steps_per_epoch: train steps per epoch (dataset size // batch size), needed with
      `epoch_warmup_steps`.
    clip: clip x_hat to [-1, 1].
    second_update: "real" (released code: real term only) or "real_fake" (Eq. 10).
    attack: "fgsm" (default), "pgd" or "gaussian".
    pgd_steps, step_size, random_start: the settings of the `pgd` attack (its steps, the size of
      each step, default eps / 4 * 2.5, and whether it starts from a random point of the ball).
    **kwargs: `GAN` arguments (loss, penalty, n_dis, ...).
  """

  method_name = "as_gan"

  def __init__(self, generator, discriminator, epsilon=1.0 / 255.0, warmup_steps=0,
               ramp_steps=0, epoch_warmup_steps=0, steps_per_epoch=None, clip=True,
               second_update="real", attack="fgsm", pgd_steps=5, step_size=None,
               random_start=True, **kwargs):
    super().__init__(generator, discriminator, **kwargs)
    errors.set_knobs(self, "ASGAN", KNOBS, locals())
    epoch_warmup_steps, steps_per_epoch = self.epoch_warmup_steps, self.steps_per_epoch
    errors.check(epoch_warmup_steps == 0 or steps_per_epoch,
                 "ASGAN.epoch_warmup_steps needs ASGAN.steps_per_epoch (the dataset size // "
                 "train.batch_size); set it in the config.")
    errors.check(epoch_warmup_steps == 0 or epoch_warmup_steps < steps_per_epoch,
                 f"ASGAN.epoch_warmup_steps ({epoch_warmup_steps}) must be below "
                 f"ASGAN.steps_per_epoch ({steps_per_epoch}): eps would stay 0 all along.")
    attacks.check_bindings(attack)
    for name in ("as_d_loss", "d_adv", "epsilon"):
      self.add_tracker(name)

  def epsilon_at(self, step):
    """eps at train step `step` (0-based): 0 during warm-up, then a linear ramp, then `epsilon`;
    0 in the first `epoch_warmup_steps` steps of every epoch."""
    after = tf.cast(step, tf.float32) - float(self.warmup_steps)
    if self.ramp_steps > 0:
      scale = tf.clip_by_value(after / float(self.ramp_steps), 0.0, 1.0)
    else:
      scale = tf.cast(after >= 0.0, tf.float32)
    on = after >= 0.0
    if self.epoch_warmup_steps:  # the release's eps = 0 at the start of every epoch
      in_epoch = tf.math.floormod(tf.cast(step, tf.int64), self.steps_per_epoch)
      on = tf.logical_and(on, in_epoch >= self.epoch_warmup_steps)
    return tf.where(on, self.epsilon * scale, 0.0)

  def adversarial_reals(self, real, labels, real_grad, epsilon, step_seed):
    """x_hat from the chosen attack (FGSM uses the pre-update input gradient `real_grad`)."""
    loss_fn = None
    if self.attack == "pgd":  # the only attack here that needs fresh passes
      d_logits = self.d_logits_fn(labels, training=True)
      loss_fn = lambda x: self.loss_fn.d_real(d_logits(x))  # noqa: E731
    step_size = self.step_size
    if step_size is None:
      step_size = attacks.default_pgd_step_size(epsilon, self.pgd_steps)
    return attacks.get(self.attack)(
        real, loss_fn, epsilon, grad=real_grad, clip=self.clip, num_steps=self.pgd_steps,
        step_size=step_size, random_start=self.random_start,
        seed=tf.random.experimental.stateless_fold_in(step_seed, rng.AS_GAN_ATTACK))

  def discriminator_round(self, real, labels, z, fake_labels, index):
    """One D round of two D steps: the normal one, then the second on x_hat. FGSM takes its
    direction from the first step's tape (the input gradient at the weights before it); other
    attacks need none."""
    batch = self.discriminator_batch(real, labels, z, fake_labels, index)
    fgsm = self.attack == "fgsm"  # D's loss reads the real batch from the source it watches
    source_grads = self.discriminator_step(batch, sources=[batch.real] if fgsm else [],
                                           make_real=(lambda real: real) if fgsm else None)
    real_grad = source_grads[0] if fgsm else None
    epsilon = self.epsilon_at(self.global_step)
    grads = self.replica_compiled("as_gan_second_update", self.second_update_gradients)(
        *batch[:4], real_grad, epsilon, batch.step_seed)
    self.apply_discriminator_gradients(grads)

  def second_update_gradients(self, real, labels, fake, fake_labels, real_grad, epsilon,
                              step_seed):
    """D's weight gradients of the second update on x_hat (compiled per replica under XLA)."""
    x_hat = tf.stop_gradient(self.adversarial_reals(real, labels, real_grad, epsilon,
                                                    step_seed))
    variables = self.discriminator.trainable_variables
    with tf.GradientTape() as tape:
      adv_out = self.discriminate(x_hat, labels)
      per_example = self.loss_fn.d_real(adv_out["logits"])
      if self.second_update == "real_fake":
        fake_logits = self.discriminate(fake, fake_labels)["logits"]
        per_example = per_example + self.loss_fn.d_fake(fake_logits)
      # float16: the loss-scaled loss (apply_discriminator_gradients' optimizer unscales).
      loss = gradients_lib.scaled(gradients_lib.average(per_example),
                                  gradients_lib.loss_scale(self.d_optimizer))
    self.track(as_d_loss=tf.reduce_mean(per_example), d_adv=tf.reduce_mean(adv_out["logits"]),
               epsilon=epsilon)
    return tape.gradient(loss, variables)
