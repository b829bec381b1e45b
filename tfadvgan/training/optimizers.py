"""Optimizers and learning-rate schedules, configured per network with gin scopes `D/` and `G/`.

    make_optimizer.beta_1 = 0.5            # both networks
    D/make_optimizer.learning_rate = 5e-5  # only the discriminator (TTUR)
"""

import gin
import keras

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
  cls = errors.choose("optimizer", name, OPTIMIZERS)
  errors.check(learning_rate > 0, f"learning_rate must be > 0; got {learning_rate}.")
  lr = learning_rate
  if decay_steps is not None or decay_rate is not None:
    errors.check(decay_steps is not None and decay_rate is not None and decay_steps > 0
                 and 0 < decay_rate, "Set both make_optimizer.decay_steps > 0 and decay_rate > 0.")
    lr = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate)
  if cls is keras.optimizers.Adam:
    return cls(learning_rate=lr, beta_1=beta_1, beta_2=beta_2)
  return cls(learning_rate=lr)


def current_learning_rate(optimizer):
  lr = optimizer.learning_rate
  return float(lr.numpy() if hasattr(lr, "numpy") else lr)
