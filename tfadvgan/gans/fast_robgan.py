"""Fast-RobGAN: Rob-GAN with free adversarial training and an improved loss
(../shared/papers/fast_robgan_free_adversarial_training.txt, Algorithm 2, Eqs. 3.1-3.2, Table 4.1).

Free adversarial training (Algorithm 2). A persistent perturbation delta, the shape of the
per-replica real batch, is kept across iterations: a `distribute.PerReplicaState` registered with
`add_state`, checkpointed over the global batch. Each of the `n_dis` (step_D) D updates draws one
real and one fake batch and *replays* the update `replays` (M) times on them: one forward/backward
pass on clip(x_r + delta, -1, 1) (`attacks.free_adversarial_input`; by default straight through
the clip, as the release) gives D's weight gradient and grad_delta; D updates, then
delta <- clip(delta + tau * sign(grad_delta), -eps, eps).

Loss (Eqs. 3.1-3.2), with the hinge loss on D^b (`GAN.loss = 'hinge'`):

  L_D = hinge_real(D^b(x_r + delta)) + class_weight * CE(D^c(x_r + delta), y_r)
        + hinge_fake(D^b(x_f)) + kl_weight * KL(p(. | x_f), U)
  L_G = -D^b(x_f) - alpha * log p(y_f | x_f)           (alpha = g_class_weight)

`kl_direction`: "uniform_to_p" = KL(U || p), what the authors' code computes (default), or
"p_to_uniform" = KL(p || U), what the thesis writes.

Learning-rate anneal (Eq. 4.1): eta0 * B^(i / I), i the train step, is `ExponentialDecay(eta0, I,
B)` (`make_optimizer.decay_steps`, `decay_rate`); `anneal_per_train_step` drives D's schedule by
the train step (`optimizers.schedule_per_train_step`: D updates n_dis * M times per step).
"""

import functools

import gin
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan.gans import auxiliary_classifier
from tfadvgan.gans import base
from tfadvgan import losses as losses_lib
from tfadvgan import optimizers
from tfadvgan import rng

KNOBS = (
    errors.Knob("epsilon", float, low=0),
    errors.Knob("step_size", float, low=0, allow_none=True),
    errors.Knob("replays", int, low=1),
    errors.Knob("delta_init", attacks.FREE_DELTA_INITS),
    errors.Knob("delta_gradient", attacks.FREE_DELTA_GRADIENTS),
    errors.Knob("kl_direction", losses_lib.KL_DIRECTIONS),
    errors.Knob("class_weight", float, low=0),
    errors.Knob("kl_weight", float, low=0),
    errors.Knob("g_class_weight", float, low=0),
    errors.Knob("clip", bool),
    errors.Knob("anneal_per_train_step", bool),
)


@gin.configurable
class FastRobGAN(auxiliary_classifier.ACGAN):
  """Rob-GAN with free adversarial training (M replays, persistent delta) and the KL term.

  Args:
    epsilon: L-inf bound of delta on the [-1, 1] scale (Table 4.1: 0.02 CIFAR, 0.03 ImageNet-143;
      the authors' CIFAR scripts used 0.006). 0 keeps delta at 0 (the "eps = 0" ablation).
    step_size: tau; None means `epsilon` (Table 4.1 sets eps = tau).
    replays: M, updates per D step on the same real and fake batch (Table 4.1: 2).
    delta_init: "uniform" (U(-eps, eps), Algorithm 2 line 1), "clamped_normal" (clip(N(0, 1),
      -eps, eps), the release) or "zeros".
    batch_size: global batch size the perturbation is made for (`train.batch_size`, which
      `build_gan` passes in when this is not bound).
    sample_shape: shape of one sample; None takes the generator's `output_shape_`.
    clip: D sees clip(x_r + delta, -1, 1) (turn off only for unbounded data).
    delta_gradient: "straight_through" (the release: grad_delta is the gradient at the clipped
      input) or "through_clip" (the clip's own gradient: zero where x_r + delta is clipped).
    class_weight: weight of CE(D^c(x_r + delta), y_r) in L_D.
    kl_weight: weight of the KL term on fakes (0: the "w/o KL-term" ablation).
    kl_direction: "uniform_to_p" (KL(U || p), the code; default) or "p_to_uniform" (KL(p || U)).
    g_class_weight: alpha_c^g (1.0 CIFAR-10 / ImageNet-143, 0.2 CIFAR-100).
    anneal_per_train_step: drive D's learning-rate schedule by the train step (see module doc).
    **kwargs: `GAN` arguments (loss -- 'hinge' in the configs --, n_dis = step_D, ...).
  """

  method_name = "fast_robgan"

  def __init__(self, generator, discriminator, epsilon=0.02, step_size=None, replays=2,
               delta_init="uniform", batch_size=None, sample_shape=None, clip=True,
               delta_gradient="straight_through", class_weight=1.0, kl_weight=1.0,
               kl_direction="uniform_to_p", g_class_weight=1.0, anneal_per_train_step=True,
               **kwargs):
    super().__init__(generator, discriminator, **kwargs)
    errors.set_knobs(self, "FastRobGAN", KNOBS, locals())
    self.step_size = self.epsilon if self.step_size is None else self.step_size
    if sample_shape is None:
      sample_shape = getattr(generator, "output_shape_", None)
    errors.check(sample_shape is not None,
                 "FastRobGAN.sample_shape is needed: the generator has no output_shape_.")
    self._free_at = self.add_state(distribute.per_replica_state(
        batch_size, sample_shape, "free_at_delta", "Fast-RobGAN's perturbation",
        setting="FastRobGAN.batch_size (or train.batch_size)"))
    self.batch_size = self._free_at.global_batch_size  # FastRobGAN.batch_size or train.batch_size
    self.sample_shape = tuple(int(d) for d in sample_shape)
    self._free_at.assign_global(self.initial_delta())
    for name in ("kl_fake", "delta_abs"):
      self.add_tracker(name)

  # ----------------------------------------------------------------- the perturbation
  @property
  def delta(self):
    """The per-replica perturbation variable (SyncOnRead under a multi-replica strategy)."""
    return self._free_at.variable

  def delta_state(self):
    """`PerReplicaState`: `global_value()` / `assign_global()` over all replicas."""
    return self._free_at

  def initial_delta(self):
    """The initial perturbation over the global batch, [batch_size, *sample_shape]."""
    return attacks.free_delta_init((self.batch_size,) + self.sample_shape, self.epsilon,
                                   tf.constant([self.seed, rng.FREE_AT_DELTA_INIT], tf.int32),
                                   kind=self.delta_init)

  # ----------------------------------------------------------------- optimizers
  def compile(self, d_optimizer, g_optimizer, **kwargs):
    if self.anneal_per_train_step:
      optimizers.schedule_per_train_step(d_optimizer, self.n_dis * self.replays)
    super().compile(d_optimizer, g_optimizer, **kwargs)

  # ----------------------------------------------------------------- D side
  def discriminator_round(self, real, labels, z, fake_labels, index):
    """One D round: M D steps (replays) on the same real and fake batch (augmented once, with
    DiffAugment on), delta updated after each."""
    fake = self.fakes(z, fake_labels)
    real, fake = self.augment_pair(real, fake, index)
    make_real = functools.partial(attacks.free_adversarial_input, real, clip=self.clip,
                                  gradient=self.delta_gradient)  # D sees make_real(delta)
    for _ in range(self.replays):
      step_seed = self.step_seed(index)  # the D-update counter moves with every replay
      delta = self._free_at.read(real.shape[0])
      (grad_delta,) = self.discriminator_step(base.DBatch(real, labels, fake, fake_labels,
                                                          step_seed),
                                              sources=[delta], make_real=make_real)
      new_delta = attacks.free_delta_update(delta, grad_delta, self.step_size, self.epsilon)
      self.delta.assign(new_delta)
      self.track(delta_abs=tf.reduce_mean(tf.abs(new_delta)))

  def class_loss_terms(self, real_out, labels, fake_out, fake_labels):
    terms = self.real_class_term(real_out, labels)
    kl_fake = losses_lib.kl_to_uniform(fake_out["class_logits"], direction=self.kl_direction)
    self.track(kl_fake=tf.reduce_mean(kl_fake))
    if self.kl_weight > 0:
      terms += self.kl_weight * kl_fake
    return terms
