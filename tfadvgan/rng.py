"""Stateless random numbers that are identical with and without XLA, and the named seed salts.

TF's float stateless kernels give *different* numbers under ``jit_compile=True`` than in eager /
graph mode on the same seed; the integer Philox bits agree. So ``uniform`` and ``normal`` draw
``tf.random.stateless_uniform(dtype=uint32, alg="philox")`` bits and turn them into floats by our
own arithmetic (24-bit uniforms; Box-Muller normals). ``split_seed`` replaces
``tf.random.experimental.stateless_split``, which also disagrees under XLA for seeds with negative
entries. A seed is either split or drawn from, never both. A seed is a ``[2]`` int32 tensor.

Salts. Every use of randomness inside a step folds its own constant into the step's seed
(``tf.random.experimental.stateless_fold_in(step_seed, SALT)``), so two uses never share numbers.
The values are those the code always used: changing one changes every run's random numbers.
"""

import numpy as np
import tensorflow as tf

# Folded into a D update's step seed (GAN.step_seed):
AS_GAN_ATTACK = 101        # AS-GAN's attack on the reals (PGD random start, gaussian noise)
ROBGAN_PGD = 201           # Rob-GAN's PGD on the reals (random start)
FINETUNE_REAL_PGD = 301    # Eq. 10 fine-tuning: PGD on the real batch
FINETUNE_FAKE_PGD = 302    # Eq. 10 fine-tuning: PGD on the fake batch
# Folded into the seed that all replicas share (GAN.step_seed(..., per_replica=False)):
DIFFAUGMENT_REAL = 401     # DiffAugment of a D update's reals
DIFFAUGMENT_FAKE = 402     # DiffAugment of the fakes (a D update's; the G update's)
# The salt of the G update's step seed (the D updates use 0..n_dis-1):
GENERATOR_STEP = 999
# Second entry of a [base seed, salt] pair:
FREE_AT_DELTA_INIT = 7919  # Fast-RobGAN's initial perturbation, [GAN.seed, 7919]
SAMPLES_Z = 7              # sampling.generate's latent codes, [seed, 7]
TRUNCATION_Z = 13          # latents.truncate's redrawn entries, [seed, 13]
SAMPLE_GRID_OFFSET = 1234  # the training sample grid's seed is train.seed + 1234
SAMPLE_GRID_Z = 0          # ... and its latent codes are drawn from [that seed, 0]
DIAGNOSTICS_Z = (7, 11)    # the latent codes of the periodic gradient diagnostics (a fixed seed)
DIAGNOSE_Z = 11            # diagnose.py's latent codes, [--seed, 11]
DIAGNOSTICS_PGD = 17       # the PGD random start of D's accuracy under attack, [seed, 17]
DIAGNOSTICS_CLASS_PGD = 23  # the PGD of the class-head / classifier accuracy, [seed, 23]
CLASSIFIER_EVAL_OFFSET = 1  # train_classifier's adversarial test accuracy uses seed + 1
BATCH_DIAGNOSTICS_SEED = 4242  # batch_diagnostics' fakes' noise: split from [seed, 4242]
EVAL_CHUNK_STRIDE = 1_000_003  # evaluate's k-th chunk of samples uses seed + k * EVAL_CHUNK_STRIDE


def _as_shape(shape):
  return tf.cast(tf.convert_to_tensor(shape), tf.int32)


def split_seed(seed, num=2):
  """``[num, 2]`` int32 child seeds of a ``[2]`` seed; identical with and without XLA."""
  return tf.random.stateless_uniform([num, 2], tf.cast(seed, tf.int32), minval=None, maxval=None,
                                     dtype=tf.int32, alg="philox")


def uniform(shape, seed, dtype=tf.float32, minval=0.0, maxval=1.0):
  """Stateless ``U[minval, maxval)`` that is identical with and without XLA.

  Args:
    shape: output shape (list or int32 tensor).
    seed: ``[2]`` int32 stateless seed.
    dtype: float dtype of the result.
    minval: lower bound.
    maxval: upper bound.

  Returns:
    A ``shape`` tensor; 24-bit resolution (``k / 2**24``) before scaling.
  """
  bits = tf.random.stateless_uniform(_as_shape(shape), tf.cast(seed, tf.int32), minval=None,
                                     maxval=None, dtype=tf.uint32, alg="philox")
  u = tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) * (2.0 ** -24)
  u = tf.cast(u, dtype)
  return tf.cast(minval, dtype) + u * tf.cast(maxval - minval, dtype)


def normal(shape, seed, dtype=tf.float32):
  """Stateless standard normal (Box-Muller on ``uniform``), identical with and without XLA."""
  shape = _as_shape(shape)
  u = uniform(tf.concat([[2], shape], axis=0), seed, tf.float32)
  radius = tf.sqrt(-2.0 * tf.math.log(1.0 - u[0]))
  return tf.cast(radius * tf.cos((2.0 * np.pi) * u[1]), dtype)
