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

Reporting: steps log with `self.track(name=value)` (a tracker registered with `add_tracker`);
every value logged goes through a `keras.metrics.Mean` tracker and is the plain per-replica mean
(never the replica-scaled partial sum that `tf.nn.compute_average_loss` returns).
"""

import typing

import gin
import keras
import tensorflow as tf

from tfadvgan import augment
from tfadvgan.data import batches as batches_lib
from tfadvgan import errors
from tfadvgan.gans import lecam as lecam_lib
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


def _replica_count():
  ctx = tf.distribute.get_replica_context()
  return ctx.num_replicas_in_sync if ctx is not None else 1


def _replica_id():
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    return tf.constant(0, tf.int32)
  return tf.cast(ctx.replica_id_in_sync_group, tf.int32)


def average(per_example):
  """Mean over the global batch, for gradients (a partial sum on each replica)."""
  return tf.nn.compute_average_loss(per_example)


def loss_scale(optimizer):
  """The current dynamic loss scale of a `keras.optimizers.LossScaleOptimizer` (float16 mixed
  precision), as a float32 tensor; None for any other optimizer."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return tf.cast(tf.convert_to_tensor(optimizer.dynamic_scale), tf.float32)
  return None


def scaled(loss, scale):
  """`loss * scale` (the loss the tape differentiates under float16), or `loss` when no scale."""
  return loss if scale is None else loss * scale


def all_finite(grads):
  """True iff every gradient is finite: what a LossScaleOptimizer checks before applying."""
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])


def unscaled_norm(grads, scale):
  """Global norm of the gradients as applied: unscaled, and 0 for an update the loss-scale
  optimizer skips (non-finite scaled gradients), so that logs stay finite."""
  norm = tf.linalg.global_norm(grads)
  if scale is None:
    return norm
  return tf.where(all_finite(grads), norm / scale, 0.0)


def same_architecture(generator):
  """A no-argument factory of new generators with `generator`'s config (the default EMA copy)."""
  errors.check(hasattr(generator, "create_weights"),
               "GAN.ema_decay is set but no generator_factory was given to build the EMA copy "
               f"(a {type(generator).__name__} cannot be rebuilt from its config).")

  def factory():
    copy = type(generator).from_config(generator.get_config())
    copy.create_weights()
    return copy
  return factory


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
class GAN(keras.Model):
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
  targeted_attack = False   # DAT: periodic diagnostics also measure its attack's success
  # Set by the engine under Mirrored / MultiWorker with XLA: compile each replica's gradient
  # computations (`replica_compiled`), keep the cross-replica reduction and optimizer applies outside.
  replica_jit = False
  _collecting = None

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
      generator_factory = same_architecture(generator)
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
    self._trackers = {}
    self._states = []
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

  # ----------------------------------------------------------------- bookkeeping
  def add_tracker(self, name):
    """Registers a `keras.metrics.Mean` that `fit` reports under `name`."""
    if name not in self._trackers:
      self._trackers[name] = keras.metrics.Mean(name=name)
    return self._trackers[name]

  def add_state(self, state):
    """Registers method state that checkpoints keep (a `distribute.PerReplicaState`, or a
    trackable of replicated variables such as `lecam.LeCam`); returns it."""
    self._states.append(state)
    return state

  def track(self, **values):
    if self._collecting is not None:  # inside a `replica_compiled` function: tracked after it returns
      for key, value in values.items():
        self._collecting.setdefault(key, []).append(value)
      return
    for key, value in values.items():
      self._trackers[key].update_state(value)

  def replica_compiled(self, name, fn):
    """`fn`, XLA-compiled per replica when `replica_jit` is set; else `fn` itself.

    Under Mirrored / MultiWorker strategies XLA cannot compile the cross-replica gradient
    reduction or the optimizer's apply (a variable on another device), so the step compiles the
    computations between them: fakes, attacks and every forward/backward. Values `fn` passes to
    `track()` are returned from the compiled function and tracked outside it.
    """
    if not self.replica_jit:
      return fn
    cache = self.__dict__.setdefault("_compiled_fns", {})
    if name not in cache:
      def collecting(*args, **kwargs):
        object.__setattr__(self, "_collecting", {})
        try:
          return fn(*args, **kwargs), dict(self._collecting)
        finally:
          object.__setattr__(self, "_collecting", None)
      jitted = tf.function(collecting, jit_compile=True)

      def call(*args, **kwargs):
        out, collected = jitted(*args, **kwargs)
        for key, values in collected.items():
          for value in values:
            self._trackers[key].update_state(value)
        return out
      call.jitted = jitted
      cache[name] = call
    return cache[name]

  @property
  def metrics(self):
    return list(self._trackers.values())

  def compile(self, d_optimizer, g_optimizer, **kwargs):
    """Takes the two optimizers; `kwargs` (jit_compile, steps_per_execution) go to Keras."""
    self.d_optimizer = d_optimizer
    self.g_optimizer = g_optimizer
    if any(isinstance(o, keras.optimizers.LossScaleOptimizer)
           for o in (d_optimizer, g_optimizer)):
      self.add_tracker("d_loss_scale")  # float16: the dynamic loss scales (they halve on a skip)
      self.add_tracker("g_loss_scale")
    # Built now, on their own variables, so that checkpoints restore into them and Keras does not
    # build an optimizer over all of G and D.
    d_optimizer.build(self.discriminator.trainable_variables)
    g_optimizer.build(self.generator.trainable_variables)
    super().compile(optimizer=g_optimizer, **kwargs)

  # ----------------------------------------------------------------- saving
  NOT_SAVED = ("A GAN is not saved as one .keras file (its method state, two optimizers and EMA "
               "copy belong to training checkpoints): save a network, gan.sampler().save("
               "'g.keras') or gan.discriminator.save('d.keras'), export a run's generator with "
               "scripts/export.py, and for resuming use ModelCheckpoint(save_weights_only=True), "
               "BackupAndRestore or the run's checkpoints.")

  def save(self, filepath, *args, **kwargs):
    """Refused with one ConfigError (`NOT_SAVED`), before any file is written."""
    del filepath, args, kwargs
    raise errors.ConfigError(self.NOT_SAVED)

  def get_config(self):
    raise errors.ConfigError(self.NOT_SAVED)

  # ----------------------------------------------------------------- inference
  NO_EVALUATE = ("A GAN has no Keras evaluate (there is no labelled target): measure samples with "
                 "tfadvgan.metrics.evaluation.evaluate (FID/IS/KID) or scripts/eval.py, and D "
                 "with scripts/diagnose.py.")

  def call(self, inputs, training=False):
    """Samples of the sampling generator (the EMA copy when kept): `gan(z)`, `gan.predict(z)`.

    `inputs` is z `[B, latent_dim]`, or for a conditional GAN `(z, labels)` (a tuple or list, or
    a dict with "z" and "labels"); images come out in [-1, 1].
    """
    z, labels = self._sampling_inputs(inputs)
    return self.sampler()(z, labels, training=training)

  def predict_step(self, data):
    """Keras's predict: `data` is z, `(z,)` or `((z, labels),)` as Keras batches `x`. Runs `call`
    itself, not `self(...)`, so that a wrong input is one line, not Keras's report of a failed
    call."""
    if isinstance(data, tuple) and len(data) == 1:
      data = data[0]
    return self.call(data, training=False)

  def _sampling_inputs(self, inputs):
    """(z, labels or None) from what `call` takes, checked."""
    if isinstance(inputs, dict):
      z, labels = inputs.get("z"), inputs.get("labels")
    elif isinstance(inputs, (tuple, list)):
      errors.check(len(inputs) in (1, 2), f"A GAN takes z or (z, labels); got {len(inputs)} "
                   "inputs.")
      z, labels = inputs[0], inputs[1] if len(inputs) == 2 else None
    else:
      z, labels = inputs, None
    errors.check(z is not None and len(z.shape) == 2 and z.shape[-1] == self.generator.latent_dim,
                 f"A GAN's input is z of shape [batch, {self.generator.latent_dim}]; got "
                 f"{None if z is None else tuple(z.shape)}.")
    errors.check(labels is not None or not self.conditional,
                 "This GAN is class-conditional: pass (z, labels), labels of shape [batch].")
    return z, labels if self.conditional else None

  def evaluate(self, *args, **kwargs):
    """Refused in one line (`NO_EVALUATE`)."""
    del args, kwargs
    raise errors.ConfigError(self.NO_EVALUATE)

  @property
  def global_step(self):
    """Number of completed train steps (G updates)."""
    return self.g_optimizer.iterations

  def step_seed(self, salt, per_replica=True):
    """A stateless seed, distinct per step, per D update, per use (`salt`) and, unless
    `per_replica` is False, per replica (False: the same on every replica, for a draw over the
    global batch of which each replica takes its rows)."""
    base = tf.stack([tf.constant(self.seed, tf.int64),
                     tf.cast(self.d_optimizer.iterations, tf.int64) * 1000 + salt])
    base = tf.cast(base, tf.int32)
    return tf.random.experimental.stateless_fold_in(base, _replica_id()) if per_replica else base

  def state_variables(self):
    """The method state registered with `add_state`, in registration order (checkpointed)."""
    return list(self._states)

  def sampler(self):
    """The generator used for samples and evaluation: the EMA copy when enabled."""
    return self.generator_ema if self.generator_ema is not None else self.generator

  # ----------------------------------------------------------------- networks as functions
  def discriminate(self, x, labels, training=True):
    """D's outputs on `x`: a dict with "logits" [B] (and "class_logits" [B, K] for AC heads)."""
    return self.discriminator(x, labels if self.conditional else None, training=training)

  def d_logits_fn(self, labels, training=True):
    """x -> [B] logits: the closure penalties and attacks take."""
    return lambda x: self.discriminate(x, labels, training)["logits"]

  def generate(self, z, labels=None, training=True):
    return self.generator(z, labels if self.conditional else None, training=training)

  # ----------------------------------------------------------------- the step
  def train_batches(self, dataset):
    """`tfadvgan.data.train_batches` for this GAN: `dataset` (plain image batches, `(images,
    labels)` or dict batches) repeated, with the noise of step s drawn from `(seed, s)` as
    `make_train_dataset(seed=seed)` draws it for batch s of a fresh run; s counts on from the
    current global step. Returns (batches, train steps in one pass over `dataset` or None)."""
    return batches_lib.train_batches(
        dataset, self.n_dis, self.generator.output_shape_, self.conditional,
        latent_dim=self.generator.latent_dim, num_classes=self.generator.num_classes,
        seed=self.seed, first_index=int(self.global_step.numpy()))

  def fit(self, x=None, *args, **kwargs):
    """Keras's `fit`, on any dataset `train_batches` takes; `steps_per_epoch` defaults to one
    pass. One device and Mirrored only: `tfadvgan.fit` runs the project's engine under every
    strategy (MultiWorker included)."""
    errors.check(not isinstance(self.distribute_strategy,
                                tf.distribute.MultiWorkerMirroredStrategy),
                 "Keras's fit cannot train under MultiWorkerMirroredStrategy: use "
                 "tfadvgan.fit(gan, dataset, ...), which takes the same arguments.")
    if isinstance(x, tf.data.Dataset):
      x, per_pass = self.train_batches(x)
      steps = kwargs.get("steps_per_epoch") or batches_lib.steps_per_epoch(None, per_pass)
      kwargs["steps_per_epoch"] = steps
      kwargs.setdefault("shuffle", False)  # a dataset is shuffled by its own pipeline
    return super().fit(x, *args, **kwargs)

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
      loss = average(per_example)
      if self.discriminator.losses:
        loss += tf.add_n(self.discriminator.losses) / _replica_count()
      scale = loss_scale(self.d_optimizer)
      loss = scaled(loss, scale)
    grads = tape.gradient(loss, variables + list(sources))
    weight_grads, source_grads = grads[:len(variables)], grads[len(variables):]
    errors.check(all(g is not None for g in source_grads),
                 "A gradient source of the D step does not reach D's loss: build the real batch "
                 "from the sources with make_real (a source passed as `real` too is a separate "
                 "input under per-replica XLA).")
    if scale is not None and source_grads:
      finite = all_finite(weight_grads + source_grads)
      source_grads = [tf.where(finite, g / scale, tf.zeros_like(g)) for g in source_grads]
    return weight_grads, source_grads, logs

  def apply_discriminator_gradients(self, grads):
    """Applies D's (loss-scaled, under float16) gradients; returns their unscaled norm."""
    variables = self.discriminator.trainable_variables
    scale = loss_scale(self.d_optimizer)
    # Norm of the gradient of this replica's mean loss (equals the full-batch gradient norm on one
    # replica); see docs/design.md, "Reported values".
    norm = unscaled_norm(grads, scale) * _replica_count()
    if scale is not None:
      self.track(d_loss_scale=scale)
    self.d_optimizer.apply_gradients(zip(grads, variables))
    if self.clip_value is not None:
      penalties_lib.clip_weights(variables, self.clip_value)
    return norm

  def fakes(self, z, fake_labels):
    """G's samples for a D update (training mode, no gradient), compiled under `replica_jit`."""
    return self.replica_compiled("fakes", lambda z, y: tf.stop_gradient(self.generate(z, y, training=True)))(
        z, fake_labels)

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
    return augment.diff_augment(x, self.diffaugment, seed, replica_id, _replica_count())

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
        real, fake, self.step_seed(index, per_replica=False), _replica_id())

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
        loss = average(per_example)
        if self.generator.losses:
          loss += tf.add_n(self.generator.losses) / _replica_count()
        loss = scaled(loss, loss_scale(self.g_optimizer))  # float16: unscaled by the optimizer
      self.track(g_loss=tf.reduce_mean(per_example))
      return tape.gradient(loss, variables)
    seed = tf.random.experimental.stateless_fold_in(
        self.step_seed(rng.GENERATOR_STEP, per_replica=False), rng.DIFFAUGMENT_FAKE)
    return self.replica_compiled("generator_gradients", gradients)(z, fake_labels, seed,
                                                                   _replica_id())

  def generator_update(self, z, fake_labels):
    grads = self.generator_gradients(z, fake_labels)
    scale = loss_scale(self.g_optimizer)
    norm = unscaled_norm(grads, scale) * _replica_count()
    if scale is not None:
      self.track(g_loss_scale=scale)
    self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
    self.track(g_grad_norm=norm)

  def update_ema(self):
    """EMA of G's trainable weights; non-trainable state (BN statistics) is copied."""
    step = tf.cast(self.global_step, tf.float32)
    decay = tf.where(step > float(self.ema_start_step), self.ema_decay, 0.0)
    trainable = {id(v) for v in self.generator.trainable_variables}
    for src, dst in zip(self.generator.weights, self.generator_ema.weights):
      if id(src) in trainable:
        dst.assign(decay * dst + (1.0 - decay) * src)
      else:
        dst.assign(src)
