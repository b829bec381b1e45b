"""Optimizers and learning-rate schedules, configured per network with gin scopes `D/` and `G/`;
`TrainStepSchedule` drives a per-update optimizer's schedule by the train step.

    make_optimizer.beta_1 = 0.5            # both networks
    D/make_optimizer.learning_rate = 5e-5  # only the discriminator (TTUR)
"""

import gin
import keras
import tensorflow as tf

from tfadvgan import errors

OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
              "sgd": keras.optimizers.SGD}


@gin.configurable
def make_optimizer(name="adam", learning_rate=2e-4, beta_1=0.5, beta_2=0.999,
                   decay_steps=None, decay_rate=None):
  """Builds a Keras optimizer.

  Args:
    name: adam | rmsprop | sgd.
    learning_rate: the initial learning rate.
    beta_1, beta_2: Adam's betas (ignored by the others).
    decay_steps, decay_rate: if set, `keras.optimizers.schedules.ExponentialDecay`:
      lr = learning_rate * decay_rate ** (iterations / decay_steps), where `iterations` counts this
      optimizer's own updates (for D that is n_dis per train step).
  """
  # Messages name the binding to change: in gin scope 'D' that is D/make_optimizer.<param>.
  scope = gin.current_scope_str()
  prefix = f"{scope}/make_optimizer" if scope else "make_optimizer"

  def check(param, value, **kwargs):
    hint = f"Set {prefix}.{param} (or make_optimizer.{param} for both networks)." if scope else ""
    return errors.check_float(f"{prefix}.{param}", value, hint=hint, **kwargs)

  cls = errors.choose(f"optimizer ({prefix}.name)", name, OPTIMIZERS)
  learning_rate = check("learning_rate", learning_rate, low=0, low_inclusive=False)
  beta_1 = check("beta_1", beta_1, low=0, high=1, high_inclusive=False)
  beta_2 = check("beta_2", beta_2, low=0, high=1, high_inclusive=False)
  lr = learning_rate
  if decay_steps is not None or decay_rate is not None:
    errors.check(decay_steps is not None and decay_rate is not None,
                 f"Set both {prefix}.decay_steps and {prefix}.decay_rate (or neither); got "
                 f"decay_steps={decay_steps!r}, decay_rate={decay_rate!r}.")
    decay_steps = check("decay_steps", decay_steps, low=0, low_inclusive=False)
    decay_rate = check("decay_rate", decay_rate, low=0, low_inclusive=False)
    lr = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate)
  if cls is keras.optimizers.Adam:
    return cls(learning_rate=lr, beta_1=beta_1, beta_2=beta_2)
  return cls(learning_rate=lr)


def current_learning_rate(optimizer):
  lr = optimizer.learning_rate
  return float(lr.numpy() if hasattr(lr, "numpy") else lr)


class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
  """Keras 3's dynamic loss-scale wrapper (for `train.mixed_precision = 'float16'`), with two
  changes that a GAN run relies on:

  - a skipped update (non-finite gradients: the scale halves, the weights stay) still counts in
    `iterations`, as tf.keras 2's LossScaleOptimizer did: `GAN.global_step` (G's iterations), the
    checkpoint numbers and the learning-rate schedules keep counting train steps. Keras 3's leaves
    the inner optimizer's counter unchanged on a skip.
  - `variables` lists the inner optimizer's variables first, then the wrapper's (its own iteration
    and learning-rate placeholders, step_counter, dynamic_scale). Checkpoints track the list by
    position, so a float32 build with the plain optimizer (eval, sampling) restores a float16 run's
    checkpoint: its variables are the first ones, the loss-scale state is left unread.

  Callers scale the loss with `scale_loss` inside the tape and pass the *scaled* gradients to
  `apply_gradients`, which unscales them (or skips the update).
  """

  def _stateful_handle_non_finite_grads(self):
    super()._stateful_handle_non_finite_grads()
    self.inner_optimizer.iterations.assign_add(1)

  @property
  def variables(self):
    return self.inner_optimizer.variables + self._variables


def loss_scaled(optimizer):
  """`optimizer` wrapped in `LossScaleOptimizer` (float16 mixed precision)."""
  return LossScaleOptimizer(optimizer)


class TrainStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """`schedule(iterations // updates_per_step)`: a per-update optimizer follows the train step.

  Fast-RobGAN's anneal (Eq. 4.1) is indexed by the train step i, but D's optimizer counts
  n_dis * M updates per train step: fed floor(d_iterations / (n_dis * M)), the index of the train
  step the update belongs to, its schedule follows i. G's optimizer counts train steps already.
  """

  def __init__(self, schedule, updates_per_step):
    super().__init__()
    self.schedule = schedule
    self.updates_per_step = int(updates_per_step)

  def __call__(self, step):
    step = tf.convert_to_tensor(step)
    return self.schedule(step // tf.cast(self.updates_per_step, step.dtype))

  def get_config(self):
    return {"schedule": keras.saving.serialize_keras_object(self.schedule),
            "updates_per_step": self.updates_per_step}

  @classmethod
  def from_config(cls, config):
    return cls(keras.saving.deserialize_keras_object(config["schedule"]),
               config["updates_per_step"])


def schedule_per_train_step(optimizer, updates_per_step):
  """Makes `optimizer`'s learning-rate schedule (if it has one) follow the train step when it
  makes `updates_per_step` > 1 updates per train step. Under float16 the schedule sits on the
  LossScaleOptimizer's inner optimizer. A constant rate, or one already wrapped, is left alone."""
  schedule = getattr(getattr(optimizer, "inner_optimizer", optimizer), "_learning_rate", None)
  if (isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
      and not isinstance(schedule, TrainStepSchedule) and updates_per_step > 1):
    optimizer.learning_rate = TrainStepSchedule(schedule, updates_per_step)
