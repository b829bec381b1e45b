"""The exponential moving average (EMA) copy of G, which sampling and evaluation use when a run
keeps one (`GAN.ema_decay`)."""

import tensorflow as tf

from tfadvgan import errors


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


def update(generator, generator_ema, step, decay, start_step):
  """EMA of G's trainable weights into `generator_ema` at G step `step` (before `start_step` the
  copy just follows G); non-trainable state (BN statistics) is copied."""
  step = tf.cast(step, tf.float32)
  decay = tf.where(step > float(start_step), decay, 0.0)
  trainable = {id(v) for v in generator.trainable_variables}
  for src, dst in zip(generator.weights, generator_ema.weights):
    if id(src) in trainable:
      dst.assign(decay * dst + (1.0 - decay) * src)
    else:
      dst.assign(src)
