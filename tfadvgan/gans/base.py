"""The GAN training step shared by every method.

`GAN` is a `keras.Model` that owns a generator, a discriminator and their two optimizers. One call
of `train_step` runs `n_dis` discriminator rounds and then one generator update, all inside the one
compiled function that `fit` builds (optionally with XLA). A D round is one D step (one update of
D's weights, `discriminator_step`) in the baseline, two in AS-GAN, M in Fast-RobGAN.

Batch layout (see `tfadvgan.data.make_train_dataset`): every batch row carries `n_dis` real samples
(`images[:, k]`), their labels, `n_dis` noise vectors for the D rounds (`z_d[:, k]`) and one for the
G update (`z_g`). D round `k` takes slice `k` of every row. A strategy splits rows across replicas,
so which examples meet in round `k` does not depend on the replica count.

Methods are small subclasses. Each overrides one or two of these steps instead of copying the loop:

  perturb_real(real, labels, step_seed)            -> real'   (Rob-GAN: PGD)
  discriminator_terms(batch, real_out, fake_out)   -> per-example D terms; here the loss on the
      clean real and fake batch (DAT adds its attacked terms; the AC methods their class terms)
  discriminator_round(real, labels, z, fake_labels, index)
      one D round: `discriminator_batch`, then one `discriminator_step` (AS-GAN adds a second step
      on FGSM-perturbed reals; Fast-RobGAN replays the step M times on a persistent perturbation)
  generator_loss(fake_out, fake_labels)            -> per_example_loss

D-regularising baselines that every method can add (docs/readings/diffaugment_lecam.md,
"DiffAugment and LeCam"):
`diffaugment` (DiffAugment on what D sees: `augment_pair` in each D update, `diffaugment_images`
on the fakes in the G update) and `lecam_weight` (LeCam's term in `discriminator_loss`, its anchors
updated in `discriminator_step`).

`discriminator_step(batch, sources=...)` also returns the gradient of D's loss for each tensor in
`sources` from the same tape as the weight gradient, i.e. at the weights *before* the update
(AS-GAN's FGSM direction, Fast-RobGAN's delta gradient). Method state that checkpoints keep is
registered with `add_state` (a `distribute.PerReplicaState`).

Reporting: steps log with `self.track(name=value)` (`model.GANModel`).
"""

import typing

import gin
import tensorflow as tf

from tfadvgan import augment
from tfadvgan import errors
from tfadvgan.gans import ema as ema_lib
from tfadvgan.gans import gradients as gradients_lib
from tfadvgan.gans import lecam as lecam_lib
from tfadvgan.gans import model as model_lib
from tfadvgan import losses as losses_lib
from tfadvgan import penalties as penalties_lib
from tfadvgan import rng


class DBatch(typing.NamedTuple):
  """What one D update trains on: the (perturbed) reals, G's fakes, their labels and the update's
  stateless seed."""
  real: tf.Tensor
  labels: typing.Optional[tf.Tensor]
  fake: tf.Tensor
  fake_labels: typing.Optional[tf.Tensor]
  step_seed: tf.Tensor


# The checked knobs of `GAN` (set as attributes of the same name) and of its LeCam term.
KNOBS = (
    errors.Knob("n_dis", int, low=1),
    errors.Knob("penalty_weight", float, low=0, allow_none=True),
    errors.Knob("fake_weight", float, low=0),
    errors.Knob("clip_value", float, low=0, low_inclusive=False, allow_none=True),
    errors.Knob("ema_decay", float, low=0, high=1, high_inclusive=False, allow_none=True),
    errors.Knob("ema_start_step", int, low=0),
    errors.Knob("seed", int),
)
LECAM_KNOBS = (
    errors.Knob("lecam_weight", float, low=0),
    errors.Knob("lecam_decay", float, low=0, high=1, high_inclusive=False),
    errors.Knob("lecam_start_step", int, low=0),
)


@gin.configurable
class GAN(model_lib.GANModel):
  """Baseline GAN: loss, penalty, clipping and EMA come from gin; no adversarial training.

  Args:
    generator: `G(z, labels=None, training=...)` -> images.
    discriminator: `D(x, labels=None, training=...)` -> {"logits": [B], ...}.
    loss: name in `tfadvgan.losses` (non_saturating, minimax, hinge, wasserstein,
      least_squares) or a loss object.
    penalty: None or a name in `tfadvgan.penalties` (wgan_gp, wgan_lp, r1, wgan_alp).
    penalty_weight: multiplier of the penalty (lambda; for r1 this is gamma / 2).
    fake_weight: multiplier of D's loss on the fakes (1.0; Rob-GAN's release weighs real BCE,
      real CE and fake BCE 0.5 : 0.5 : 1, i.e. 2.0 here with RobGAN.class_weight 1.0).
    clip_value: WGAN weight clipping of every D variable after each D update (None: off).
    n_dis: D rounds per G update (`discriminator_round`).
    conditional: feed labels to G and D (needs a labelled dataset); None: the method's
      `conditional_default` (True for the AC methods, Rob-GAN and Fast-RobGAN).
    ema_decay: None, or the decay of an exponential moving average of G's weights; sampling and
      eval then use the EMA copy.
    ema_start_step: before this G step the EMA copy just follows G.
    generator_factory: a no-argument callable that builds a second generator of G's
      architecture, for the EMA copy (with ema_decay; None: G's class from G's config).
    seed: base seed of the stateless randomness used inside the step (penalties, attacks).
    diffaugment: None, or a DiffAugment policy, e.g. 'color,translation,cutout'
      (`tfadvgan.augment`): D sees augmented reals and fakes in its updates (attacks and penalties
      act on the augmented batch) and G's fakes through a fresh augmentation in the G update.
    lecam_weight: LeCam regularisation's lambda (0: off; `gans.lecam`).
    lecam_decay: the decay of LeCam's EMA anchors.
    lecam_start_step: G step from which the anchors decay and the LeCam term applies.
    lecam_one_sided: the release's relu form of the LeCam term (True) or the paper's squares.
  """

  method_name = "gan"       # build_gan.method's name for this class (gans.METHODS)
  conditional_default = False  # GAN(conditional=None) and build_gan.conditional when unset
  discriminator_head = None  # build_gan's build_discriminator.head when gin binds none

  def __init__(self,
               generator,
               discriminator,
               loss="non_saturating",
               penalty=None,
               penalty_weight=10.0,
               fake_weight=1.0,
               clip_value=None,
               n_dis=1,
               conditional=None,
               ema_decay=None,
               ema_start_step=0,
               generator_factory=None,
               seed=0,
               diffaugment=None,
               lecam_weight=0.0,
               lecam_decay=0.9,
               lecam_start_step=0,
               lecam_one_sided=True,
               name="gan"):
    super().__init__(name=name)
    errors.set_knobs(self, "GAN", KNOBS, locals())
    self.penalty_weight = float(self.penalty_weight or 0.0)
    if ema_decay is not None and generator_factory is None:
      generator_factory = ema_lib.same_architecture(generator)
    self.generator = generator
    self.discriminator = discriminator
    self.generator_ema = None
    if ema_decay is not None:
      self.generator_ema = generator_factory()
      self.generator_ema.set_weights(generator.get_weights())
    self.loss_fn = losses_lib.get(loss)
    self.penalty_name = penalty if isinstance(penalty, str) else getattr(penalty, "__name__", None)
    self.penalty_fn = penalties_lib.get(penalty)
    if self.penalty_fn is penalties_lib.none:
      self.penalty_fn = None
    penalties_lib.check_bindings(self.penalty_fn)
    self.conditional = bool(self.conditional_default if conditional is None else conditional)
    if self.conditional:
      errors.check(getattr(generator, "num_classes", 0) > 0,
                   "conditional=True but the generator has num_classes=0: set "
                   "build_generator.num_classes (train.py does this from the dataset).")
    for metric in ("d_loss", "g_loss", "d_real", "d_fake", "wdist", "d_grad_norm", "g_grad_norm"):
      self.add_tracker(metric)
    if self.penalty_fn is not None:
      self.add_tracker("penalty")
    self.add_regularisers(diffaugment, lecam_weight, lecam_decay, lecam_start_step,
                          lecam_one_sided)
    self.built = True

  def add_regularisers(self, diffaugment, lecam_weight, lecam_decay, lecam_start_step,
                       lecam_one_sided):
    """Checks and sets DiffAugment's policy and LeCam's state (the `GAN` arguments)."""
    self.diffaugment = augment.parse_policy(diffaugment)
    sample_shape = getattr(self.generator, "output_shape_", None)
    errors.check(not self.diffaugment or sample_shape is None or len(sample_shape) == 3,
                 f"GAN.diffaugment augments images; this run's samples have shape {sample_shape}: "
                 "set GAN.diffaugment = None for non-image data.")
    lecam = errors.check_knobs("GAN", LECAM_KNOBS, locals())
    self.lecam = None
    if lecam["lecam_weight"] > 0:
      self.lecam = self.add_state(lecam_lib.LeCam(
          lecam["lecam_weight"], lecam["lecam_decay"], lecam["lecam_start_step"], lecam_one_sided))
      for metric in ("lecam", "lecam_anchor_real", "lecam_anchor_fake"):
        self.add_tracker(metric)

  # ----------------------------------------------------------------- the step
  def step_seed(self, salt, per_replica=True):
    """A stateless seed, distinct per step, per D update, per use (`salt`) and, unless
    `per_replica` is False, per replica (False: the same on every replica, for a draw over the
    global batch of which each replica takes its rows)."""
    base = tf.stack([tf.constant(self.seed, tf.int64),
                     tf.cast(self.d_optimizer.iterations, tf.int64) * 1000 + salt])
    base = tf.cast(base, tf.int32)
    if not per_replica:
      return base
    return tf.random.experimental.stateless_fold_in(base, gradients_lib.replica_id())

  def train_step(self, data):
    errors.check(isinstance(data, dict) and "images" in data,
                 "GAN.train_step expects the dict batches of tfadvgan.data.make_train_dataset "
                 "or train_batches; gan.fit and tfadvgan.fit convert plain image batches.")
    images = data["images"]
    labels = data.get("labels")
    if self.conditional:
      errors.require_labels(labels is not None, self.method_name)
    for k in range(self.n_dis):
      self.discriminator_round(
          real=images[:, k],
          labels=labels[:, k] if labels is not None else None,
          z=data["z_d"][:, k],
          fake_labels=data["y_d"][:, k] if "y_d" in data else None,
          index=k)
    self.generator_update(data["z_g"], data.get("y_g"))
    if self.generator_ema is not None:
      self.update_ema()
    return {name: tracker.result() for name, tracker in self._trackers.items()}

  # ----------------------------------------------------------------- D side
  def perturb_real(self, real, labels, step_seed):
    """The real batch D trains on (Rob-GAN: PGD). Identity here."""
    del labels, step_seed
    return real

  def clean_outputs(self, batch):
    """D's outputs on the clean real and fake batches (DAT also takes its attack gradients from
    this pass)."""
    return (self.discriminate(batch.real, batch.labels),
            self.discriminate(batch.fake, batch.fake_labels))

  def discriminator_terms(self, batch, real_out, fake_out):
    """Per-example D loss terms before the penalty: the loss on the clean reals and fakes. DAT
    adds its attacked terms, the AC methods their class terms."""
    del batch
    return (self.loss_fn.d_real(real_out["logits"])
            + self.fake_weight * self.loss_fn.d_fake(fake_out["logits"]))

  def discriminator_loss(self, real, labels, fake, fake_labels, step_seed):
    """Per-example D loss on one real and one fake batch, plus the values to log:
    `discriminator_terms` + penalty_weight * penalty."""
    batch = DBatch(real, labels, fake, fake_labels, step_seed)
    real_out, fake_out = self.clean_outputs(batch)
    real_logits, fake_logits = real_out["logits"], fake_out["logits"]
    per_example = self.discriminator_terms(batch, real_out, fake_out)
    logs = {"d_real": tf.reduce_mean(real_logits), "d_fake": tf.reduce_mean(fake_logits),
            "wdist": tf.reduce_mean(real_logits) - tf.reduce_mean(fake_logits)}
    if self.penalty_fn is not None and self.penalty_weight > 0:
      penalty = self.penalty_fn(self.d_logits_fn(labels), real, fake, seed=step_seed)
      per_example = per_example + self.penalty_weight * penalty
      logs["penalty"] = tf.reduce_mean(penalty)
    if self.lecam is not None:
      weighted, value = self.lecam.per_example(real_logits, fake_logits, self.global_step)
      per_example = per_example + weighted
      logs["lecam"] = tf.reduce_mean(value)
    logs["d_loss"] = tf.reduce_mean(per_example)
    return per_example, logs

  def discriminator_gradients(self, real, labels, fake, fake_labels, step_seed, sources=None,
                              make_real=None):
    """`_discriminator_gradients`, compiled per replica under `replica_jit`. A loss that needs a
    cross-replica value (DAT's global-batch targets) overrides this with
    `global_means.GlobalMeans`: an all-reduce cannot sit inside the compiled function."""
    return self.replica_compiled("discriminator_gradients", self._discriminator_gradients)(
        real, labels, fake, fake_labels, step_seed, sources=sources, make_real=make_real)

  def _discriminator_gradients(self, real, labels, fake, fake_labels, step_seed, sources=None,
                               make_real=None):
    """One tape: the gradient for D's weights and for each tensor in `sources`.

    Under float16 mixed precision the tape differentiates the loss times D's loss scale: the
    weight gradients are returned scaled (`apply_discriminator_gradients` hands them to the
    LossScaleOptimizer, which unscales them), the source gradients unscaled, and zero when the
    update is skipped (non-finite gradients), so that no inf or NaN reaches an attack.
    `make_real(*sources)`, when given, builds the real batch inside the tape from `sources`
    (Fast-RobGAN: clip(x + delta); AS-GAN: the identity on `sources=[real]`), so their gradients
    come from the same backward pass as the weights'. A source must reach the loss through
    `make_real`: under per-replica XLA each argument is a separate input of the compiled function,
    so a source that is also passed as `real` would get no gradient.

    Returns:
      (weight gradients, [gradient for each source], logs).
    """
    variables = list(self.discriminator.trainable_variables)
    sources = list(sources or [])
    with tf.GradientTape() as tape:
      for source in sources:
        tape.watch(source)
      if make_real is not None:
        real = make_real(*sources)
      per_example, logs = self.discriminator_loss(real, labels, fake, fake_labels, step_seed)
      loss = gradients_lib.average(per_example)
      if self.discriminator.losses:
        loss += tf.add_n(self.discriminator.losses) / gradients_lib.replica_count()
      scale = gradients_lib.loss_scale(self.d_optimizer)
      loss = gradients_lib.scaled(loss, scale)
    grads = tape.gradient(loss, variables + list(sources))
    weight_grads, source_grads = grads[:len(variables)], grads[len(variables):]
    errors.check(all(g is not None for g in source_grads),
                 "A gradient source of the D step does not reach D's loss: build the real batch "
                 "from the sources with make_real (a source passed as `real` too is a separate "
                 "input under per-replica XLA).")
    if scale is not None and source_grads:
      finite = gradients_lib.all_finite(weight_grads + source_grads)
      source_grads = [tf.where(finite, g / scale, tf.zeros_like(g)) for g in source_grads]
    return weight_grads, source_grads, logs

  def apply_discriminator_gradients(self, grads):
    """Applies D's (loss-scaled, under float16) gradients; returns their unscaled norm."""
    variables = self.discriminator.trainable_variables
    scale = gradients_lib.loss_scale(self.d_optimizer)
    # Norm of the gradient of this replica's mean loss (equals the full-batch gradient norm on one
    # replica); see docs/design.md, "Reported values".
    norm = gradients_lib.unscaled_norm(grads, scale) * gradients_lib.replica_count()
    if scale is not None:
      self.track(d_loss_scale=scale)
    self.d_optimizer.apply_gradients(zip(grads, variables))
    if self.clip_value is not None:
      penalties_lib.clip_weights(variables, self.clip_value)
    return norm

  def fakes(self, z, fake_labels):
    """G's samples for a D update (training mode, no gradient), compiled under `replica_jit`."""
    def fakes(z, fake_labels):
      return tf.stop_gradient(self.generate(z, fake_labels, training=True))
    return self.replica_compiled("fakes", fakes)(z, fake_labels)

  def discriminator_step(self, batch, sources=None, make_real=None):
    """One D step: D's gradients on one `DBatch`, applied and logged; returns the gradients for
    `sources` (see `_discriminator_gradients`)."""
    grads, source_grads, logs = self.discriminator_gradients(*batch, sources=sources,
                                                             make_real=make_real)
    self.track(d_grad_norm=self.apply_discriminator_gradients(grads), **logs)
    if self.lecam is not None:  # after the gradient: its own means enter for the next update
      anchors = self.lecam.update(logs["d_real"], logs["d_fake"], self.global_step)
      self.track(lecam_anchor_real=anchors[0], lecam_anchor_fake=anchors[1])
    return source_grads

  def discriminator_batch(self, real, labels, z, fake_labels, index):
    """The `DBatch` of D round `index` (k in 0..n_dis-1): G's fakes, the reals through
    `perturb_real`, and the step's seed."""
    step_seed = self.step_seed(index)
    fake = self.fakes(z, fake_labels)
    real, fake = self.augment_pair(real, fake, index)
    real = self.replica_compiled("perturb_real", self.perturb_real)(real, labels, step_seed)
    return DBatch(real, labels, fake, fake_labels, step_seed)

  def diffaugment_images(self, x, seed, replica_id):
    """`x` through DiffAugment (identity when `diffaugment` is off). `seed` is the same on every
    replica; each takes its rows of one draw over the global batch (`augment.diff_augment`)."""
    if not self.diffaugment:
      return x
    return augment.diff_augment(x, self.diffaugment, seed, replica_id,
                                gradients_lib.replica_count())

  def augment_pair(self, real, fake, index):
    """D round `index`'s reals and fakes through DiffAugment, independent draws (compiled per
    replica under `replica_jit`); unchanged when `diffaugment` is off."""
    if not self.diffaugment:
      return real, fake
    fold = tf.random.experimental.stateless_fold_in
    def both(real, fake, seed, replica_id):
      return (self.diffaugment_images(real, fold(seed, rng.DIFFAUGMENT_REAL), replica_id),
              self.diffaugment_images(fake, fold(seed, rng.DIFFAUGMENT_FAKE), replica_id))
    return self.replica_compiled("diffaugment", both)(
        real, fake, self.step_seed(index, per_replica=False), gradients_lib.replica_id())

  def discriminator_round(self, real, labels, z, fake_labels, index):
    """D round `index` (k in 0..n_dis-1): here one D step on the round's `DBatch`."""
    self.discriminator_step(self.discriminator_batch(real, labels, z, fake_labels, index))

  # ----------------------------------------------------------------- G side
  def generator_loss(self, fake_out, fake_labels):
    """Per-example G loss from D's output on the fakes."""
    del fake_labels
    return self.loss_fn.g(fake_out["logits"])

  def generator_gradients(self, z, fake_labels):
    """G's weight gradients (compiled per replica under `replica_jit`); tracks g_loss. D sees
    the fakes through DiffAugment when it is on."""
    def gradients(z, fake_labels, seed, replica_id):
      variables = self.generator.trainable_variables
      with tf.GradientTape() as tape:
        fake = self.generate(z, fake_labels, training=True)
        fake = self.diffaugment_images(fake, seed, replica_id)
        fake_out = self.discriminate(fake, fake_labels)
        per_example = self.generator_loss(fake_out, fake_labels)
        loss = gradients_lib.average(per_example)
        if self.generator.losses:
          loss += tf.add_n(self.generator.losses) / gradients_lib.replica_count()
        # float16: the loss-scaled loss (the optimizer unscales the gradients).
        loss = gradients_lib.scaled(loss, gradients_lib.loss_scale(self.g_optimizer))
      self.track(g_loss=tf.reduce_mean(per_example))
      return tape.gradient(loss, variables)
    seed = tf.random.experimental.stateless_fold_in(
        self.step_seed(rng.GENERATOR_STEP, per_replica=False), rng.DIFFAUGMENT_FAKE)
    return self.replica_compiled("generator_gradients", gradients)(z, fake_labels, seed,
                                                                   gradients_lib.replica_id())

  def generator_update(self, z, fake_labels):
    grads = self.generator_gradients(z, fake_labels)
    scale = gradients_lib.loss_scale(self.g_optimizer)
    norm = gradients_lib.unscaled_norm(grads, scale) * gradients_lib.replica_count()
    if scale is not None:
      self.track(g_loss_scale=scale)
    self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
    self.track(g_grad_norm=norm)

  def update_ema(self):
    """EMA of G's trainable weights (`ema.update`)."""
    ema_lib.update(self.generator, self.generator_ema, self.global_step, self.ema_decay,
                   self.ema_start_step)
