"""Building blocks shared by the architectures: normalisation, spectral norm, heads.

Spectral normalisation
----------------------
``spectral_norm(layer)`` wraps a layer in ``keras.layers.SpectralNormalization`` (Keras 3), which
behaves differently from the reparametrisation of Miyato et al. (2018) in ways that matter:

* Only a call with ``training=True`` normalises. Such a call runs ``power_iterations`` (1) steps of
  power iteration on the kernel reshaped to ``[-1, kernel.shape[-1]]``, updates the persistent
  vector ``u`` and then *overwrites the kernel variable itself* with ``W / sigma`` before applying
  the layer. A call with ``training=False`` (or ``None``) uses the stored kernel unchanged.
* Because the kernel variable holds the normalised kernel, the gradient does not flow through
  ``sigma`` (it is a projection after each update, not ``W / sigma(W)`` inside the graph), and the
  optimiser step moves the kernel away from norm 1 until the next training-mode call normalises it
  again. Evaluation (``training=False``) after a train step therefore sees a kernel whose norm is
  1 plus one optimiser step.
* Every training-mode call is one more power-iteration step (D called on real, fake and
  adversarial batches in one train step runs several). ``u`` starts random, so the estimate
  converges after tens of training calls; until then the largest singular value can exceed 1.
  A freshly built model (the builders call it once with ``training=False``) is *not* normalised.
* ``Conv2DTranspose`` kernels are ``[kh, kw, out, in]``, so for them the normalised matrix is
  ``[kh * kw * out, in]``.
* The wrapper casts the wrapped layer's output to the *input* dtype, so it cannot wrap an
  ``Embedding`` fed integer labels (the output would become int32). The projection head's class
  embedding is therefore a bias-free ``Dense`` on one-hot labels; its ``[num_classes, F]`` kernel
  is the embedding table and is normalised as that matrix (as in SNGAN's projection D).
* Under ``tf.distribute.MirroredStrategy`` every replica runs the same power iteration on the same
  (mirrored) kernel and ``u``, so the copies stay identical; the assignment happens in replica
  context with aggregation NONE, which TF allows.
* Wrapped layers cannot be given inputs whose last dimension differs from the first call's
  (``input_spec``).

Batch normalisation
-------------------
All BN layers use momentum 0.9 and epsilon 1e-5 (DCGAN / SNGAN values; the Keras defaults 0.99 /
1e-3 are slow for GAN evaluation). ``synchronized=True`` computes batch statistics across
replicas (``keras.layers.BatchNormalization(synchronized=True)``).

Saving
------
Every model and layer of the package is registered as ``tfadvgan>ClassName``
(``keras.saving.register_keras_serializable``) and returns its constructor arguments from
``get_config``, so ``model.save("x.keras")`` and ``keras.models.load_model("x.keras")`` (after
``import tfadvgan.models``) give the same network with every variable: weights, BN moving
statistics and the spectral-norm vectors ``u``. ``Serializable.from_config`` builds the sub-layers
under the saved Keras dtype policy: Keras gives a sub-layer the *global* policy at its creation,
not its parent's, so a mixed-precision model would otherwise load with float32 sub-layers.
"""
import contextlib

import keras
from keras import ops

from tfadvgan import errors

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

HEADS = ("plain", "ac", "projection")


def register(cls):
  """Registers `cls` for `.keras` loading under the name ``tfadvgan>ClassName``."""
  return keras.saving.register_keras_serializable(package="tfadvgan")(cls)


@contextlib.contextmanager
def keras_policy(policy):
  """Layers created inside take the Keras dtype policy `policy` (a name such as
  "mixed_bfloat16", a `keras.DTypePolicy` or its serialized dict; None changes nothing); the
  previous global policy is restored on exit."""
  previous = keras.config.dtype_policy()
  if policy is not None:
    if isinstance(policy, dict):
      policy = keras.dtype_policies.deserialize(policy)
    keras.config.set_dtype_policy(policy)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


class Serializable:
  """Mixin of the package's layers and models: `from_config` creates the sub-layers under the
  saved dtype policy (see "Saving" in the module docstring). Each class's `get_config` adds its
  own constructor arguments to its parent's."""

  @classmethod
  def from_config(cls, config):
    with keras_policy(config.get("dtype")):
      return super().from_config(config)


def dcgan_init():
  """DCGAN weight init N(0, 0.02)."""
  return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def glorot_init(gain=1.0):
  """Xavier/Glorot uniform init used by the ResNet and MLP models; `gain` as in PyTorch's
  `xavier_uniform_(w, gain)` (bound gain * sqrt(6 / (fan_in + fan_out)))."""
  if gain == 1.0:
    return keras.initializers.GlorotUniform()
  return keras.initializers.VarianceScaling(scale=gain * gain, mode="fan_avg",
                                            distribution="uniform")


def spectral_norm(layer, enabled=True):
  """Wraps ``layer`` in ``keras.layers.SpectralNormalization`` when ``enabled``, named
  ``sn_<layer name>`` (so that variable paths are the same in every instance of a model)."""
  if not enabled:
    return layer
  return keras.layers.SpectralNormalization(layer, power_iterations=1, name=f"sn_{layer.name}")


def use_batch_norm(batch_norm, spectral_norm):
  """A discriminator's BN choice: `batch_norm` when set, else BN unless spectral norm (SNGAN's SN
  discriminators have none)."""
  return (not spectral_norm) if batch_norm is None else bool(batch_norm)


def batch_norm(synchronized=False, center=True, scale=True, name=None):
  """BatchNormalization with the package's momentum/epsilon."""
  return keras.layers.BatchNormalization(
      momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=center, scale=scale,
      synchronized=synchronized, name=name)


@register
class ConditionalBatchNorm(Serializable, keras.layers.Layer):
  """Batch norm without its own affine transform, followed by per-class gamma and beta.

  ``y = BN(x) * gamma[label] + beta[label]``, with ``gamma`` initialised to 1 and ``beta`` to 0
  (de Vries et al. 2017; Miyato & Koyama 2018). The batch statistics are shared by all classes.

  Args:
    num_classes: number of classes (rows of the gamma/beta tables).
    synchronized: compute batch statistics across replicas.
  """

  def __init__(self, num_classes, synchronized=False, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.synchronized = synchronized
    self.bn = batch_norm(synchronized=synchronized, center=False, scale=False, name="bn")

  def build(self, input_shape):
    channels = int(input_shape[-1])
    self.bn.build(input_shape)
    self.gamma = self.add_weight(
        shape=(self.num_classes, channels), initializer="ones", name="gamma")
    self.beta = self.add_weight(
        shape=(self.num_classes, channels), initializer="zeros", name="beta")

  def call(self, x, labels, training=None):
    h = self.bn(x, training=training)
    labels = ops.cast(labels, "int32")
    gamma = ops.take(self.gamma, labels, axis=0)
    beta = ops.take(self.beta, labels, axis=0)
    bshape = [-1] + [1] * (len(x.shape) - 2) + [gamma.shape[-1]]
    return h * ops.reshape(gamma, bshape) + ops.reshape(beta, bshape)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes,
            "synchronized": self.synchronized}


@register
class GeneratorNorm(Serializable, keras.layers.Layer):
  """BN for unconditional generators, ConditionalBatchNorm when ``num_classes > 0``."""

  def __init__(self, num_classes=0, synchronized=False, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.synchronized = synchronized
    self.conditional = num_classes > 0
    if self.conditional:
      self.norm = ConditionalBatchNorm(num_classes, synchronized=synchronized, name="cbn")
    else:
      self.norm = batch_norm(synchronized=synchronized, name="bn")

  def call(self, x, labels=None, training=None):
    if self.conditional:
      return self.norm(x, labels, training=training)
    return self.norm(x, training=training)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes,
            "synchronized": self.synchronized}


def global_sum_pool(h):
  """Sums over the spatial axes of an NHWC tensor (SNGAN)."""
  return ops.sum(h, axis=(1, 2))


@register
class DiscriminatorHead(Serializable, keras.layers.Layer):
  """Maps features ``h [B, F]`` to ``{"logits": [B]}`` (and class logits for the AC head).

  * ``plain``: ``logit = psi(h)`` with ``psi`` a Dense(1) (with bias).
  * ``ac``: as plain, plus ``class_logits = Dense(num_classes)(h)`` on the same features.
  * ``projection``: ``logit = psi(h) + <embed(y), h>`` (Miyato & Koyama 2018) with ``embed`` an
    embedding table ``E [num_classes, F]``, implemented as a bias-free ``Dense(F)`` applied to
    ``one_hot(y)``; needs labels.

  With ``use_spectral_norm`` every Dense and the projection embedding are spectrally normalised.

  Args:
    head: one of ``HEADS``.
    num_classes: number of classes (> 0 for ``ac`` and ``projection``).
    use_spectral_norm: wrap the head's layers in SpectralNormalization.
    kernel_initializer: initializer of the Dense kernels and the embedding.
  """

  def __init__(self, head="plain", num_classes=0, use_spectral_norm=False,
               kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.head = head
    self.num_classes = int(num_classes)
    self.use_spectral_norm = use_spectral_norm
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.psi = spectral_norm(
        keras.layers.Dense(1, kernel_initializer=self.kernel_initializer, name="psi"),
        use_spectral_norm)
    self.classifier = None
    self.embed = None
    if head == "ac":
      self.classifier = spectral_norm(
          keras.layers.Dense(num_classes, kernel_initializer=self.kernel_initializer,
                             name="classifier"), use_spectral_norm)

  def build(self, input_shape):
    features = int(input_shape[-1])
    self.psi.build(input_shape)
    if self.classifier is not None:
      self.classifier.build(input_shape)
    if self.head == "projection":
      # embed(y) = one_hot(y) @ E with E [num_classes, F]: a bias-free Dense, so that it can be
      # spectrally normalised (see the module docstring). Created here, under the head's own
      # policy (the global one may differ when a saved model is loaded).
      with keras_policy(self.dtype_policy):
        self.embed = spectral_norm(
            keras.layers.Dense(features, use_bias=False,
                               kernel_initializer=self.kernel_initializer, name="embed"),
            self.use_spectral_norm)
      self.embed.build((None, self.num_classes))

  def call(self, h, labels=None, training=None):
    out = {"logits": ops.reshape(self.psi(h, training=training), [-1])}
    if self.classifier is not None:
      out["class_logits"] = self.classifier(h, training=training)
    if self.head == "projection":
      errors.check(labels is not None,
                   "The projection discriminator head needs labels: call D(x, labels).")
      y = ops.one_hot(ops.reshape(ops.cast(labels, "int32"), [-1]), self.num_classes,
                      dtype=h.dtype)
      e = self.embed(y, training=training)
      out["logits"] = out["logits"] + ops.sum(e * h, axis=-1)
    return out

  def get_config(self):
    return {**super().get_config(), "head": self.head, "num_classes": self.num_classes,
            "use_spectral_norm": self.use_spectral_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def check_labels(labels, num_classes, who):
  """Raises a ConfigError when a conditional model is called without labels."""
  errors.check(
      labels is not None,
      f"The {who} is conditional (num_classes={num_classes}) and needs labels: "
      f"call it as {who[0].upper()}(inputs, labels).")


__all__ = [
    "HEADS", "register", "keras_policy", "Serializable",
    "ConditionalBatchNorm", "GeneratorNorm", "DiscriminatorHead", "batch_norm",
    "spectral_norm", "global_sum_pool", "dcgan_init", "glorot_init", "check_labels",
]
