"""`GANModel`: what a GAN is to Keras and to the engine, below the training step of `base.GAN`.

It holds the trackers that `fit` reports (`add_tracker`, `track`), the method state that
checkpoints keep (`add_state`), the per-replica compiled functions (`replica_compiled`), the two
optimizers (`compile`), `fit` on any dataset `train_batches` takes, sampling through `call` /
`predict`, and the one-line refusals of what a GAN does not do (`save`, `get_config`,
`evaluate`). A subclass sets `generator`, `discriminator`, `generator_ema` (or None),
`conditional`, `n_dis` and `seed` in its constructor (`base.GAN` does).

Reporting: steps log with `self.track(name=value)` (a tracker registered with `add_tracker`);
every value logged goes through a `keras.metrics.Mean` tracker and is the plain per-replica mean
(never the replica-scaled partial sum that `tf.nn.compute_average_loss` returns).
"""

import keras
import tensorflow as tf

from tfadvgan.data import batches as batches_lib
from tfadvgan import errors


class GANModel(keras.Model):
  """The Keras side of a GAN (module doc); `base.GAN` adds the training step."""

  # Set by the engine under Mirrored / MultiWorker with XLA: compile each replica's gradient
  # computations (`replica_compiled`), keep the cross-replica reduction and optimizer applies
  # outside.
  replica_jit = False
  _collecting = None

  def __init__(self, name="gan"):
    super().__init__(name=name)
    self._trackers = {}
    self._states = []

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
    """Logs `name=value` pairs through their trackers (`add_tracker`); inside a
    `replica_compiled` function they are collected and tracked after it returns."""
    if self._collecting is not None:
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
    """G on z (and the labels when conditional)."""
    return self.generator(z, labels if self.conditional else None, training=training)

  # ----------------------------------------------------------------- fit
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
