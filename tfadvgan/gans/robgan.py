"""Rob-GAN: co-training with PGD on the real images and a split AC loss
(../shared/papers/robgan_from_adversarial_training_to_gans.txt, Sec. 3.3, Eqs. 8-10; the authors'
release xuanqing94/RobGAN).

Class-conditional: G uses conditional BN, D has a real/fake logit D^b and a class head D^c
(`build_discriminator.head = 'ac'`). Each of the `n_dis` D updates:

  1. attacks the real batch with L-inf PGD (`perturb_real`): `pgd_steps` sign steps of
     `step_size` that increase  attack_adv_weight * BCE(D^b(x), real)
     + attack_class_weight * CE(D^c(x), y)  (the release: 0.5 / 0.5), each followed by projection
     onto the eps-ball and onto [-1, 1]; no random start by default; D in inference mode during the
     attack (BN running statistics, no spectral-norm power iteration) unless `attack_training`;
  2. trains D on x_r + sigma and the fakes. `class_loss = 'split'` (Eq. 9): D maximises
     L_S + L_C1, i.e. minimises  loss.d_real(D^b(x_r + sigma)) + loss.d_fake(D^b(x_f))
     + class_weight * CE(D^c(x_r + sigma), y_r)  (no class term on the fakes);
     `class_loss = 'acgan'` (Eq. 8, the ablation) adds class_weight * CE(D^c(x_f), y_f).

G minimises  loss.g(D^b(x_f)) + g_class_weight * CE(D^c(x_f), y_f)  (Eq. 9: G maximises
L_C2 - L_S, with the non-saturating form of -L_S as in the release). `epsilon = 0` skips the attack
(the "new loss without adversarial training" curves of Fig. 7, and SNGAN(AC) with a hinge loss).

The fine-tuning stage (Eq. 10) is `tfadvgan/training/finetune.py` (`scripts/finetune.py`).
Readings (paper vs release) are in docs/readings/robgan.md, "Rob-GAN and Fast-RobGAN: readings
and decisions".
"""

import gin
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan.gans import auxiliary_classifier
from tfadvgan import losses as losses_lib
from tfadvgan import rng

CLASS_LOSSES = ("split", "acgan")
KNOBS = (
    errors.Knob("epsilon", float, low=0),
    errors.Knob("pgd_steps", int, low=1),
    errors.Knob("step_size", float, low=0),
    errors.Knob("attack_adv_weight", float, low=0),
    errors.Knob("attack_class_weight", float, low=0),
    errors.Knob("class_loss", CLASS_LOSSES),
    errors.Knob("class_weight", float, low=0),
    errors.Knob("g_class_weight", float, low=0),
    errors.Knob("random_start", bool),
    errors.Knob("attack_training", bool),
    errors.Knob("clip", bool),
)


@gin.configurable
class RobGAN(auxiliary_classifier.ACGAN):
  """Class-conditional GAN whose D trains on PGD-attacked reals with the split AC loss (Eq. 9).

  Args:
    epsilon: L-inf radius on the [-1, 1] scale (release: 0.03125 at 64 px, 0.0625 at 128 px);
      0 turns the attack off.
    pgd_steps: PGD steps K (release: 5).
    step_size: size of each sign step (release: 0.0078, whatever epsilon).
    random_start: start PGD from a uniform point in the ball (release: no).
    attack_training: run D in training mode during the attack (release: inference mode).
    attack_adv_weight: weight of BCE(D^b(x), real) = softplus(-D^b(x)) in the attacked loss.
    attack_class_weight: weight of CE(D^c(x), y) in the attacked loss.
    class_loss: "split" (Eq. 9, class term on reals only) or "acgan" (Eq. 8, reals and fakes).
    class_weight: weight of the D class terms.
    g_class_weight: weight of CE(D^c(x_f), y_f) in the G loss.
    clip: keep attacked images in [-1, 1] (turn off only for unbounded data).
    **kwargs: `GAN` arguments (loss, n_dis, penalty, ...).
  """

  method_name = "robgan"

  def __init__(self, generator, discriminator, epsilon=0.03125, pgd_steps=5, step_size=0.0078,
               random_start=False, attack_training=False, attack_adv_weight=0.5,
               attack_class_weight=0.5, class_loss="split", class_weight=1.0, g_class_weight=1.0,
               clip=True, **kwargs):
    super().__init__(generator, discriminator, **kwargs)
    errors.set_knobs(self, "RobGAN", KNOBS, locals())
    errors.check(self.attack_adv_weight + self.attack_class_weight > 0,
                 "RobGAN.attack_adv_weight and RobGAN.attack_class_weight are both 0; set at "
                 "least one > 0 (or RobGAN.epsilon = 0 to turn the attack off).")
    attacks.check_bindings("pgd")
    if class_loss == "acgan":
      self.add_tracker("class_fake")

  # ----------------------------------------------------------------- the attack
  def attack_loss_fn(self, labels):
    """x -> [B] per-example loss the PGD attack increases (release: 0.5 BCE + 0.5 CE)."""

    def loss(x):
      out = self.discriminate(x, labels, training=self.attack_training)
      value = self.attack_adv_weight * losses_lib.non_saturating.d_real(out["logits"])  # BCE
      if self.attack_class_weight > 0:
        value += self.attack_class_weight * losses_lib.class_cross_entropy(
            out["class_logits"], labels)
      return value

    return loss

  def attack(self, real, labels, step_seed):
    """x_r + sigma: L-inf PGD within the eps-ball and [-1, 1] (a constant for the D update)."""
    if self.epsilon == 0.0:
      return real
    seed = tf.random.experimental.stateless_fold_in(step_seed, rng.ROBGAN_PGD)
    return tf.stop_gradient(attacks.pgd(
        real, self.attack_loss_fn(labels), self.epsilon, self.pgd_steps, self.step_size,
        random_start=self.random_start, seed=seed, clip=self.clip))

  def perturb_real(self, real, labels, step_seed):
    return self.attack(real, labels, step_seed)

  # ----------------------------------------------------------------- losses
  def class_loss_terms(self, real_out, labels, fake_out, fake_labels):
    terms = self.real_class_term(real_out, labels)
    if self.class_loss == "acgan":
      ce_fake = losses_lib.class_cross_entropy(fake_out["class_logits"], fake_labels)
      terms += self.class_weight * ce_fake
      self.track(class_fake=tf.reduce_mean(ce_fake))
    return terms
