r"""Rob-GAN step 2: fine-tunes the discriminator's auxiliary classifier (Eq. 10):
`ClassifierFinetuner`. The run that restores a trained run, fine-tunes it and writes a new run
directory is `tfadvgan.training.finetune_run` (its command line: `scripts/finetune.py`,
tfadvgan/cli/finetune.py).

Every step minimises (Eq. 10)

  CE(f(PGD(x_r)), y_r) + fake_weight * CE(f(PGD(x_f)), y_f),   x_f = G(z, y_f)

with G frozen in inference mode (the run's sampler: the EMA copy when the run has one) and y_f
uniform, as G was asked for. PGD is L-inf, increases the CE of the class head only, and projects
onto the eps-ball and [-1, 1] after every sign step; D runs in inference mode during the attack.
Only D's variables that the class loss reaches are updated; the real/fake logit layer D^b (the
head's `psi`, and the projection embedding if any) is never changed. Readings of the paper and of
the authors' release are in the `ClassifierFinetuner` docstring (and docs/readings/robgan.md).
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan import losses as losses_lib
from tfadvgan import rng
from tfadvgan.gans import auxiliary_classifier

OPTIMIZERS = ("sgd", "adam")
KNOBS = (  # of finetune_classifier (ClassifierFinetuner); stage_steps and clip are checked apart
    errors.Knob("fake_weight", float, low=0),
    errors.Knob("epsilon", float, low=0),
    errors.Knob("pgd_steps", int, low=1),
    errors.Knob("step_size", float, low=0, allow_none=True, hint="(None: epsilon / 5)"),
    errors.Knob("optimizer", OPTIMIZERS),
    errors.Knob("learning_rate", float, low=0, low_inclusive=False),
    errors.Knob("momentum", float, low=0, high=1, high_inclusive=False),
    errors.Knob("weight_decay", float, low=0),
    errors.Knob("stage_decay", float, low=0, low_inclusive=False),
    errors.Knob("batch_size", int, low=1, allow_none=True),
    errors.Knob("seed", int),
    errors.Knob("log_every_steps", int, low=1),
    errors.Knob("random_start", bool),
    errors.Knob("update_training", bool),
    errors.Knob("jit_compile", bool),
)


def _frozen_layers(discriminator):
  """The real/fake output layers of D's head (never updated by the fine-tuning)."""
  head = getattr(discriminator, "head_layer", None)
  return [layer for layer in (getattr(head, "psi", None), getattr(head, "embed", None))
          if layer is not None]


@gin.configurable("finetune_classifier", denylist=["gan"])
class ClassifierFinetuner:
  """Fine-tunes the auxiliary classifier of a trained Rob-GAN discriminator (Eq. 10).

  `step(x_real, y_real, z, y_fake, seed)` is one update (compiled with `tf.function`) on

    mean CE(D^c(PGD(x_r)), y_r) + fake_weight * mean CE(D^c(PGD(G(z, y_f))), y_f)

  Readings (paper Sec. 3.3 / the authors' release xuanqing94/RobGAN, finetune.py, finetune.sh,
  miscs/pgd.py `attack_label_Linf_PGD`):

  * fake_weight (the paper's lambda): 0.5. The paper gives no value; the release README says
    "typically 0.3~0.8" (its scripts use 0, 0.3 and 1). `fake_weight = 0` skips the fakes (no G
    call), as the release does.
  * Attack: `pgd_steps` (release `--steps 5`) L-inf sign steps of `step_size` (default
    epsilon / 5, the release's `Linf_SGD(lr=epsilon / 5)`) on the class CE alone, no random start,
    projection to the eps-ball and [-1, 1] after every step; epsilon 0.03125 on the [-1, 1] scale
    (the release's 64 px and 128 px value, also `RobGAN.epsilon`'s default). The reals and the
    fakes are both attacked, each with its own labels. D runs in inference mode during the attack.
  * D's mode during the update: inference (`update_training = False`). The release calls
    `dis.eval()` in the attack and never switches back, so its whole fine-tuning runs D in eval
    mode (BN moving statistics frozen, no spectral-norm power iteration). `update_training = True`
    runs the update's forward passes in training mode instead (BN batch statistics and moving
    averages; Keras spectral norm then re-projects every kernel, see models/layers.py); the head's
    real/fake layer is restored after each such step so D^b stays bit-identical.
  * Variables: every trainable D variable the class loss reaches (the feature extractor and the
    class head); the head's real/fake layer `psi` (and a projection `embed`) is excluded, and any
    other variable without a gradient is skipped.
  * Optimizer: Adam (betas 0.9 / 0.999, eps 1e-8, no weight decay), learning rate 1e-3: the
    release's Eq. 10 version (`torch.optim.Adam(parameters, lr=opt.lr)`, `--lr 1.0e-3` in
    finetune.sh). `optimizer = 'sgd'` (momentum 0.9, weight decay 5e-4) is the release's first
    commit, which trained a classifier from scratch on attacked reals only (its fake term and the
    loading of D were commented out). `weight_decay` is PyTorch's coupled L2
    (`grad += weight_decay * w`, on every updated variable, biases included), not Keras's
    decoupled decay.
  * Stages: the release trains 4 stages of [20, 20, 10, 10] epochs (Adam version; [40, 20, 20, 10]
    in the SGD commit) and divides the learning rate by 10 after each. Here `stage_steps` counts
    steps (default 2000, 2000, 1000, 1000: the release's 2:2:1:1 ratio, CPU-sized) and stage i uses
    `learning_rate * stage_decay ** i` through one optimizer and a `PiecewiseConstantDecay`
    schedule. The release instead builds a new optimizer at each stage (Adam's moments and bias
    correction restart): not reproduced.
  * Fakes: the run's sampler (EMA G when enabled, else G) in inference mode, z ~ N(0, I) and y_f
    uniform from the data pipeline (`make_train_dataset`'s `z_g`, `y_g`). The release runs G in
    train mode under no_grad (BN batch statistics); inference mode is the generator as evaluated.
  * Loss averaging: per-batch means (`nn.CrossEntropyLoss`), plus D's regularisation losses if any.

  Args:
    gan: a trained conditional GAN whose D has an auxiliary-classifier head (`head = 'ac'`).
    fake_weight: weight of the fake-image term (>= 0).
    epsilon: L-inf radius of the attack on the [-1, 1] scale; 0 turns the attack off.
    pgd_steps: PGD steps (int >= 1).
    step_size: size of each PGD sign step; None means epsilon / 5.
    random_start: start PGD from a uniform point of the ball (release: no).
    clip: keep attacked inputs in [-1, 1]; None means yes for images, no for 2-D points.
    optimizer: 'adam' (the release's Eq. 10 version) or 'sgd' (its first commit).
    learning_rate: learning rate of the first stage (> 0).
    momentum: SGD momentum in [0, 1) (ignored by Adam).
    weight_decay: coupled L2 coefficient (>= 0; the release's Adam has none, its SGD 5e-4).
    stage_steps: steps of each learning-rate stage (non-empty, ints >= 1).
    stage_decay: learning-rate factor from one stage to the next (> 0).
    update_training: run D in training mode for the update (see above).
    batch_size: batch size of `finetune_run`; None means the source run's `train.batch_size`.
    seed: seed of `finetune_run`'s data order and noise, and of PGD random starts.
    log_every_steps: `finetune_run`'s progress / TensorBoard interval.
    jit_compile: compile the step with XLA.
  """

  def __init__(self, gan, fake_weight=0.5, epsilon=0.03125, pgd_steps=5, step_size=None,
               random_start=False, clip=None, optimizer="adam", learning_rate=1e-3, momentum=0.9,
               weight_decay=0.0, stage_steps=(2000, 2000, 1000, 1000), stage_decay=0.1,
               update_training=False, batch_size=None, seed=0, log_every_steps=100,
               jit_compile=False):
    name = "finetune_classifier"
    stages = tuple(stage_steps) if isinstance(stage_steps, (list, tuple)) else None
    errors.check(stages and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                for s in stages),
                 f"{name}.stage_steps must be a non-empty sequence of integers >= 1 (steps per "
                 f"learning-rate stage), e.g. (4000, 2000, 2000, 1000); got {stage_steps!r}.")
    auxiliary_classifier.check_ac_discriminator(gan, "Classifier fine-tuning (Rob-GAN Eq. 10)")
    checked = errors.check_knobs(name, KNOBS, locals())
    self.optimizer_name = checked.pop("optimizer")  # `optimizer` is the Keras optimizer below
    self.base_learning_rate = checked.pop("learning_rate")  # `learning_rate(step)`: the schedule
    vars(self).update(checked)
    self.gan = gan
    self.generator = gan.sampler()
    self.step_size = float(self.epsilon / 5.0 if self.step_size is None else self.step_size)
    if clip is None:
      clip = len(getattr(gan.discriminator, "input_shape_", (0, 0, 0))) >= 3
    self.clip = bool(clip)
    self.stage_steps = stages

    values = [self.base_learning_rate * self.stage_decay ** i for i in range(len(stages))]
    if len(stages) == 1:
      self.schedule = None
      lr = values[0]
    else:
      # PiecewiseConstantDecay gives values[0] for step <= b_0, values[i] for b_{i-1} < step <= b_i:
      # the optimizer's iteration count during update k (0-based) is k, so b_i = end_i - 1.
      boundaries = [int(b) - 1 for b in np.cumsum(stages)[:-1]]
      self.schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
      lr = self.schedule

    d = gan.discriminator
    self._frozen = [v for layer in _frozen_layers(d) for v in layer.weights]
    frozen_ids = {id(v) for v in self._frozen}
    self.variables = [v for v in d.trainable_variables if id(v) not in frozen_ids]
    errors.check(self.variables, "The discriminator has no trainable variables to fine-tune.")
    strategy = getattr(gan, "distribute_strategy", None) or tf.distribute.get_strategy()
    with strategy.scope():
      if optimizer == "sgd":
        self.optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=self.momentum)
      else:
        self.optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=0.9, beta_2=0.999,
                                               epsilon=1e-8)
      self.optimizer.build(self.variables)
    self._compiled_step = tf.function(self.train_step, jit_compile=self.jit_compile,
                                      autograph=False, reduce_retracing=True)
    # The run loop's bookkeeping stays on the device: window sums of the logs and the first
    # non-finite one, read by the host only at log intervals (`read_window`).
    self.log_keys = (["ce_real", "acc_real"] + (["ce_fake", "acc_fake"] if self.fake_weight > 0 else [])
                     + ["loss", "grad_norm", "learning_rate"])
    self._window = tf.Variable(tf.zeros([len(self.log_keys)]), trainable=False)
    self._window_count = tf.Variable(0.0, trainable=False)
    self._bad = tf.Variable([-1.0, -1.0, 0.0], trainable=False)  # step, key index, value
    self._compiled_logged_step = tf.function(self._logged_step, jit_compile=self.jit_compile,
                                             autograph=False, reduce_retracing=True)

  # ----------------------------------------------------------------- schedule
  @property
  def total_steps(self):
    return int(sum(self.stage_steps))

  def learning_rate(self, step):
    """The learning rate of update `step` (0-based): learning_rate * stage_decay ** stage."""
    if self.schedule is None:
      return tf.constant(self.base_learning_rate, tf.float32)
    return self.schedule(tf.convert_to_tensor(step, tf.int64))

  # ----------------------------------------------------------------- the step
  def class_logits(self, x, labels, training):
    return self.gan.discriminate(x, labels, training=training)["class_logits"]

  def attack(self, x, labels, seed):
    """L-inf PGD on CE(D^c(x), labels), D in inference mode; `x` itself when epsilon == 0."""
    if self.epsilon == 0.0:
      return x

    def loss_fn(v):
      return losses_lib.class_cross_entropy(self.class_logits(v, labels, False), labels)

    return tf.stop_gradient(attacks.pgd(
        x, loss_fn, self.epsilon, self.pgd_steps, self.step_size,
        random_start=self.random_start, seed=seed, clip=self.clip))

  def train_step(self, x_real, y_real, z, y_fake, seed):
    """One Eq. 10 update (traceable: static shapes, no Python side effects). Returns the logs."""
    seed = tf.cast(seed, tf.int32)
    y_real = tf.cast(y_real, tf.int32)
    x_real = tf.convert_to_tensor(x_real, tf.float32)
    fold_in = tf.random.experimental.stateless_fold_in
    x_real_adv = self.attack(x_real, y_real, fold_in(seed, rng.FINETUNE_REAL_PGD))
    use_fakes = self.fake_weight > 0.0
    if use_fakes:
      y_fake = tf.cast(y_fake, tf.int32)
      x_fake = tf.stop_gradient(
          self.generator(tf.convert_to_tensor(z, tf.float32), y_fake, training=False))
      x_fake_adv = self.attack(x_fake, y_fake, fold_in(seed, rng.FINETUNE_FAKE_PGD))
    saved = [tf.identity(v) for v in self._frozen] if self.update_training else []
    learning_rate = self.learning_rate(self.optimizer.iterations)
    logs = {}
    with tf.GradientTape() as tape:
      logits_real = self.class_logits(x_real_adv, y_real, self.update_training)
      ce_real = tf.reduce_mean(losses_lib.class_cross_entropy(logits_real, y_real))
      loss = ce_real
      logs.update(ce_real=ce_real, acc_real=auxiliary_classifier.class_accuracy(logits_real, y_real))
      if use_fakes:
        logits_fake = self.class_logits(x_fake_adv, y_fake, self.update_training)
        ce_fake = tf.reduce_mean(losses_lib.class_cross_entropy(logits_fake, y_fake))
        loss = loss + self.fake_weight * ce_fake
        logs.update(ce_fake=ce_fake, acc_fake=auxiliary_classifier.class_accuracy(logits_fake, y_fake))
      total = loss
      if self.gan.discriminator.losses:
        total = total + tf.add_n(self.gan.discriminator.losses)
    grads = tape.gradient(total, self.variables)
    pairs = [(g, v) for g, v in zip(grads, self.variables) if g is not None]
    errors.check(pairs, "The class head's loss reaches no discriminator variable.")
    grad_norm = tf.linalg.global_norm([g for g, _ in pairs])
    if self.weight_decay > 0:
      pairs = [(g + self.weight_decay * tf.cast(v, g.dtype), v) for g, v in pairs]
    self.optimizer.apply_gradients(pairs)
    for v, value in zip(self._frozen, saved):
      v.assign(value)
    logs.update(loss=loss, grad_norm=grad_norm,
                learning_rate=tf.cast(learning_rate, tf.float32))
    return logs

  def step(self, x_real, y_real, z, y_fake, seed):
    """One compiled update; returns {name: scalar tensor} (ce_real, acc_real, [ce_fake, acc_fake,]
    loss, grad_norm, learning_rate)."""
    return self._compiled_step(x_real, y_real, z, y_fake, seed)

  def _logged_step(self, x_real, y_real, z, y_fake, seed):
    logs = self.train_step(x_real, y_real, z, y_fake, seed)
    values = tf.stack([tf.cast(logs[k], tf.float32) for k in self.log_keys])
    finite = tf.math.is_finite(values)
    first = tf.argmin(tf.cast(finite, tf.int32), output_type=tf.int32)  # the first non-finite
    new_bad = tf.logical_and(tf.logical_not(tf.reduce_all(finite)), self._bad[0] < 0)
    step = tf.cast(self.optimizer.iterations, tf.float32)  # 1-based once the update is applied
    self._bad.assign(tf.where(new_bad, tf.stack([step, tf.cast(first, tf.float32),
                                                 tf.gather(values, first)]), self._bad))
    self._window.assign_add(values)
    self._window_count.assign_add(1.0)

  def logged_step(self, x_real, y_real, z, y_fake, seed):
    """`step` without a host read: the logs are summed on the device for `read_window`."""
    self._compiled_logged_step(x_real, y_real, z, y_fake, seed)

  def read_window(self):
    """The mean logs since the last read, then a reset (one device-to-host copy).

    Raises:
      ConfigError: a logged value was NaN or infinite at some step of the window or before.
    """
    bad_step, key, value = (float(v) for v in self._bad.numpy())
    if bad_step >= 0:
      raise errors.ConfigError(
          f"Fine-tuning diverged: {self.log_keys[int(key)]} = {value} at step {int(bad_step)}; "
          "nothing was written. Lower finetune_classifier.learning_rate (e.g. 1e-4: BN "
          "discriminators in inference mode can diverge at the default 1e-3) or change the seed.")
    sums, count = self._window.numpy(), float(self._window_count.numpy())
    self._window.assign(tf.zeros_like(self._window))
    self._window_count.assign(0.0)
    return {k: float(v) / max(count, 1.0) for k, v in zip(self.log_keys, sums)}

  def settings(self):
    """The resolved knobs, for finetune.json."""
    return {"fake_weight": self.fake_weight, "epsilon": self.epsilon, "pgd_steps": self.pgd_steps,
            "step_size": self.step_size, "random_start": self.random_start,
            "clip": self.clip, "optimizer": self.optimizer_name,
            "learning_rate": self.base_learning_rate, "momentum": self.momentum,
            "weight_decay": self.weight_decay, "stage_steps": list(self.stage_steps),
            "stage_decay": self.stage_decay, "update_training": self.update_training,
            "seed": self.seed,
            "generator": "ema" if self.generator is not self.gan.generator else "generator"}
