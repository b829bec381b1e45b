"""What the auxiliary-classifier (AC) methods share, Rob-GAN and Fast-RobGAN: the head check, the
class accuracy, D's class terms (on top of the clean loss) and G's loss with its class term.

D has a real/fake logit D^b and a class head D^c (`build_discriminator.head = 'ac'`); G is
class-conditional. A subclass sets `class_weight` and `g_class_weight` in its constructor.
"""

import tensorflow as tf

from tfadvgan import errors
from tfadvgan import losses as losses_lib
from tfadvgan.gans import base


def check_ac_discriminator(gan, method):
  """ConfigError unless the run is conditional and D has an auxiliary-classifier head."""
  head = getattr(gan.discriminator, "head", None)
  errors.check(head == "ac",
               f"{method} needs a discriminator with an auxiliary-classifier head "
               f"(build_discriminator(head='ac', num_classes=...); gin: "
               f"build_discriminator.head = 'ac'); this one has head={head!r}.")
  errors.check(gan.conditional,
               f"{method} is class-conditional: leave conditional unset or True (gin: "
               f"build_gan.conditional) and use a labelled dataset.")


def class_accuracy(class_logits, labels):
  """Fraction of examples whose arg-max class is the label."""
  pred = tf.argmax(class_logits, axis=-1, output_type=tf.int32)
  return tf.reduce_mean(tf.cast(tf.equal(pred, tf.cast(labels, tf.int32)), tf.float32))


class ACGAN(base.GAN):
  """A class-conditional GAN with an AC discriminator (checked at construction)."""

  conditional_default = True
  discriminator_head = "ac"
  class_weight = 1.0
  g_class_weight = 1.0

  def __init__(self, generator, discriminator, **kwargs):
    super().__init__(generator, discriminator, **kwargs)
    check_ac_discriminator(self, type(self).__name__)
    for name in ("class_real", "acc_real", "g_class"):
      self.add_tracker(name)

  def discriminator_terms(self, batch, real_out, fake_out):
    """The clean D loss plus the method's `class_loss_terms`."""
    return (super().discriminator_terms(batch, real_out, fake_out)
            + self.class_loss_terms(real_out, batch.labels, fake_out, batch.fake_labels))

  def class_loss_terms(self, real_out, labels, fake_out, fake_labels):
    """Per-example class terms of D's loss (Rob-GAN: CE on reals and fakes; Fast-RobGAN: CE on
    reals and the KL term on fakes)."""
    raise NotImplementedError

  def real_class_term(self, real_out, labels):
    """[B] class_weight * CE(D^c(x_r), y_r); logs its mean and D's accuracy on the reals."""
    ce_real = losses_lib.class_cross_entropy(real_out["class_logits"], labels)
    self.track(class_real=tf.reduce_mean(ce_real),
               acc_real=class_accuracy(real_out["class_logits"], labels))
    return self.class_weight * ce_real

  def generator_loss(self, fake_out, fake_labels):
    """loss.g(D^b(x_f)) + g_class_weight * CE(D^c(x_f), y_f)."""
    ce = losses_lib.class_cross_entropy(fake_out["class_logits"], fake_labels)
    self.track(g_class=tf.reduce_mean(ce))
    return self.loss_fn.g(fake_out["logits"]) + self.g_class_weight * ce
