"""One-batch diagnostics of a GAN for TensorBoard during training (``batch_diagnostics``), compiled
once per GAN."""
import weakref

import gin
import tensorflow as tf

from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan import tensor_ops
from tfadvgan import rng
from tfadvgan.metrics.diagnostics import batching

BATCH_KEYS = ("d_acc_real", "d_acc_real_fgsm", "d_acc_fake", "grad_l1", "grad_sparsity",
              "conf_real", "conf_real_adv", "wdist", "d_real_logit", "d_fake_logit")


class BatchDiagnostics:
  """One-batch diagnostics of a GAN, compiled once (``tf.function`` with an input signature).

  ``__call__(real_batch, labels=None, epsilon=1/255, seed=0)`` returns a dict of Python floats
  (keys ``BATCH_KEYS``): D accuracy on reals clean / under FGSM (BCE loss, epsilon on the [-1, 1]
  scale), D accuracy on fakes, mean per-example L1 norm and sparsity of ``grad_x D(x_r)``,
  ``mean sigmoid(D)`` on reals and their FGSM examples, ``mean D(x_r) - mean D(x_f)`` and the two
  mean logits. Fakes come from ``gan.sampler()`` in inference mode with stateless noise from
  ``seed`` (conditional runs: the real labels). Batch size, epsilon and seed are tensor arguments,
  so calls never retrace. The FGSM step uses the chain rule on the logit gradient
  (``grad softplus(-t) = -sigmoid(-t) grad t``), so one backward pass serves both the attack and
  the gradient statistics.
  """

  def __init__(self, gan, zero_tol=1e-6, training=False, clip=None):
    # Only the networks are kept (not `gan`), so the per-GAN cache below does not keep it alive.
    self._discriminator = gan.discriminator
    self._generator = gan.sampler()
    self.conditional = bool(getattr(gan, "conditional", False))
    self.training = bool(training)
    self.zero_tol = float(zero_tol)
    self._clip = clip
    self._fn = None

  def _build(self, shape):
    discriminator = self._discriminator
    generator = self._generator
    clip = (len(shape) == 3) if self._clip is None else bool(self._clip)
    conditional = self.conditional
    training = self.training
    zero_tol = self.zero_tol
    latent_dim = int(generator.latent_dim)
    reduce_axes = list(range(1, len(shape) + 1))

    def d(x, y):
      return batching.logits_of(discriminator(x, y if conditional else None, training=training))

    def compute(real, labels, seed, epsilon):
      seeds = rng.split_seed(seed, 2)
      logits_real, g = tensor_ops.input_gradient(lambda v: d(v, labels), real)
      bce_grad = -tf.reshape(tf.sigmoid(-logits_real), [-1] + [1] * len(shape)) * g
      x_adv = attacks.fgsm(real, None, epsilon, clip=clip, grad=bce_grad)
      logits_adv = d(x_adv, labels)
      batch = tf.shape(real)[0]
      z = rng.normal(tf.stack([batch, latent_dim]), seeds[0])
      fake_labels = labels if conditional else None
      fake = generator(z, fake_labels, training=False)
      logits_fake = d(fake, fake_labels)
      mean = tf.reduce_mean
      f32 = lambda b: tf.cast(b, tf.float32)
      return {
          "d_acc_real": mean(f32(logits_real > 0)),
          "d_acc_real_fgsm": mean(f32(logits_adv > 0)),
          "d_acc_fake": mean(f32(logits_fake < 0)),
          "grad_l1": mean(tf.reduce_sum(tf.abs(g), axis=reduce_axes)),
          "grad_sparsity": mean(f32(tf.abs(g) <= zero_tol)),
          "conf_real": mean(tf.sigmoid(logits_real)),
          "conf_real_adv": mean(tf.sigmoid(logits_adv)),
          "wdist": mean(logits_real) - mean(logits_fake),
          "d_real_logit": mean(logits_real),
          "d_fake_logit": mean(logits_fake),
      }

    signature = [tf.TensorSpec([None] + list(shape), tf.float32),
                 tf.TensorSpec([None], tf.int32),
                 tf.TensorSpec([2], tf.int32),
                 tf.TensorSpec([], tf.float32)]
    self._shape = tuple(shape)
    self._fn = tf.function(compute, input_signature=signature)

  @property
  def tracing_count(self):
    """How many times the inner function was traced (1 after any number of calls)."""
    return 0 if self._fn is None else self._fn.experimental_get_tracing_count()

  def __call__(self, real_batch, labels=None, epsilon=1.0 / 255, seed=0):
    real = tf.cast(tf.convert_to_tensor(real_batch), tf.float32)
    errors.check(real.shape.rank is not None and real.shape.rank >= 2 and real.shape[0] != 0,
                 f"batch_diagnostics needs a [B, ...] batch; got shape {real.shape}.")
    if self._fn is None:
      self._build(tuple(real.shape[1:]))
    errors.check(tuple(real.shape[1:]) == self._shape,
                 f"batch_diagnostics was built for inputs {self._shape}; got {tuple(real.shape)}.")
    if labels is None:
      errors.check(not self.conditional,
                   "This run is class-conditional: batch_diagnostics needs the batch's labels.")
      labels = tf.zeros(tf.shape(real)[:1], tf.int32)
    labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    eps = batching.check_epsilons([epsilon])[0]
    seed_t = tf.constant([int(seed), rng.BATCH_DIAGNOSTICS_SEED], tf.int32)
    out = self._fn(real, labels, seed_t, tf.constant(eps, tf.float32))
    return {k: float(v.numpy()) for k, v in out.items()}


_BATCH_CACHE = weakref.WeakKeyDictionary()


def compiled_batch_diagnostics(gan, zero_tol=1e-6, training=False):
  """The ``BatchDiagnostics`` cached for ``gan`` (built on first use; one per setting)."""
  per_gan = _BATCH_CACHE.setdefault(gan, {})
  key = (float(zero_tol), bool(training))
  if key not in per_gan:
    per_gan[key] = BatchDiagnostics(gan, zero_tol=zero_tol, training=training)
  return per_gan[key]


@gin.configurable(denylist=["gan", "real_batch", "labels", "seed"])
def batch_diagnostics(gan, real_batch, labels=None, epsilon=1.0 / 255, seed=0, zero_tol=1e-6,
                      training=False):
  """Scalars for TensorBoard from one real batch; see ``BatchDiagnostics`` (compiled once per GAN).

  Args:
    gan: a ``GAN``.
    real_batch: ``[B, ...]`` real samples in [-1, 1].
    labels: ``[B]`` labels (required for conditional runs; also the fakes' labels).
    epsilon: FGSM budget on the [-1, 1] scale.
    seed: int seed of the fakes' noise.
    zero_tol: sparsity threshold on ``|grad|``.
    training: discriminator mode (default inference).

  Returns:
    dict of Python floats, keys ``BATCH_KEYS``.
  """
  return compiled_batch_diagnostics(gan, zero_tol, training)(real_batch, labels, epsilon, seed)
