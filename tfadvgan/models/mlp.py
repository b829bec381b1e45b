"""MLP generator and discriminator for flat data such as the 2-D toy distributions (``(2,)``).

* G: ``[z, one_hot(y)]`` (the one-hot only when ``num_classes > 0``) -> ``depth`` x
  ``Dense(width)-[BN]-ReLU`` -> ``Dense(D)`` -> ``output_activation``, **linear by default**: the
  toy sets of ``tfadvgan.data.synthetic`` are not in [-1, 1] (ring radius 2, grid -4..4), so a
  tanh output could not reach them. This is the one exception to the contract's tanh output
  (which is about images); bind ``MLPGenerator.output_activation = 'tanh'`` for data scaled to
  [-1, 1]. BN is off by default; when on and conditional it is ConditionalBatchNorm.
* D: ``depth`` x ``Dense(width)-[BN]-ReLU`` -> head. BN is off by default.
* Defaults: ``width=256``, ``depth=4`` (``hidden_sizes`` overrides both), Glorot-uniform init.
"""
import math

import gin
import keras
from keras import ops

from tfadvgan.models import base
from tfadvgan.models import layers

DEFAULT_WIDTH = 256
DEFAULT_DEPTH = 4


def _hidden(width, depth, hidden_sizes):
  if hidden_sizes is not None:
    return tuple(int(h) for h in hidden_sizes)
  return (int(width or DEFAULT_WIDTH),) * int(depth)


@layers.register
@gin.configurable
class MLPGenerator(base.Generator):
  """MLP generator (see module docstring).

  Args:
    output_shape: shape of one sample, e.g. ``(2,)``.
    latent_dim: size of ``z``.
    num_classes: > 0 for a class-conditional generator.
    width: hidden units per layer (default 256).
    depth: number of hidden layers (default 4).
    hidden_sizes: explicit hidden sizes, overriding ``width``/``depth``.
    batch_norm: BN after each hidden Dense.
    output_activation: "linear" (default; toy data is unbounded) or "tanh".
    use_spectral_norm: spectrally normalise every Dense.
    synchronized_bn: synchronise BN statistics across replicas.
  """

  def __init__(self, output_shape, latent_dim=2, num_classes=0, width=None, depth=DEFAULT_DEPTH,
               hidden_sizes=None, batch_norm=False, output_activation="linear",
               use_spectral_norm=False, synchronized_bn=False, **kwargs):
    super().__init__(output_shape, latent_dim, num_classes, **kwargs)
    self.hidden_sizes = _hidden(width, depth, hidden_sizes)
    self.batch_norm = batch_norm
    self.use_spectral_norm = use_spectral_norm
    self.synchronized_bn = synchronized_bn
    self.output_activation = keras.activations.get(output_activation)
    self.denses = [layers.spectral_norm(
        keras.layers.Dense(h, kernel_initializer=layers.glorot_init(), name=f"dense{i}"),
        use_spectral_norm) for i, h in enumerate(self.hidden_sizes)]
    self.norms = [layers.GeneratorNorm(num_classes, synchronized_bn, name=f"norm{i}")
                  for i in range(len(self.hidden_sizes))] if batch_norm else []
    self.out = layers.spectral_norm(
        keras.layers.Dense(math.prod(self.output_shape_), kernel_initializer=layers.glorot_init(),
                           name="out"), use_spectral_norm)

  def call(self, z, labels=None, training=None):
    labels = self._labels(labels)
    h = z
    if labels is not None:
      h = ops.concatenate(
          [h, ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype=z.dtype)], axis=-1)
    for i, dense in enumerate(self.denses):
      h = dense(h, training=training)
      if self.norms:
        h = self.norms[i](h, labels, training=training)
      h = ops.relu(h)
    h = self.output_activation(self.out(h, training=training))
    return base.to_float32(ops.reshape(h, (-1,) + self.output_shape_))

  def get_config(self):
    return {**super().get_config(), "hidden_sizes": list(self.hidden_sizes),
            "batch_norm": self.batch_norm,
            "output_activation": keras.activations.serialize(self.output_activation),
            "use_spectral_norm": self.use_spectral_norm, "synchronized_bn": self.synchronized_bn}


@layers.register
@gin.configurable
class MLPDiscriminator(base.Discriminator):
  """MLP discriminator (see module docstring).

  Args:
    input_shape: shape of one sample, e.g. ``(2,)``.
    head: "plain" | "ac" | "projection".
    num_classes: number of classes for the ac/projection heads.
    width: hidden units per layer (default 256).
    depth: number of hidden layers (default 4).
    hidden_sizes: explicit hidden sizes, overriding ``width``/``depth``.
    use_batch_norm: BN after each hidden Dense (default off).
    batch_norm: the builder's switch; BN is used only when this, ``use_batch_norm`` and not
      ``use_spectral_norm``.
    use_spectral_norm: spectrally normalise every Dense.
    synchronized_bn: synchronise BN statistics across replicas.
  """

  def __init__(self, input_shape, head="plain", num_classes=0, width=None, depth=DEFAULT_DEPTH,
               hidden_sizes=None, use_batch_norm=False, batch_norm=None, use_spectral_norm=False,
               synchronized_bn=False, **kwargs):
    super().__init__(input_shape, head, num_classes, use_spectral_norm,
                     kernel_initializer=layers.glorot_init(), **kwargs)
    self.hidden_sizes = _hidden(width, depth, hidden_sizes)
    self.use_batch_norm = use_batch_norm
    self.batch_norm = batch_norm
    self.synchronized_bn = synchronized_bn
    self.use_bn = use_batch_norm and layers.use_batch_norm(batch_norm, use_spectral_norm)
    self.denses = [layers.spectral_norm(
        keras.layers.Dense(h, kernel_initializer=layers.glorot_init(), name=f"dense{i}"),
        use_spectral_norm) for i, h in enumerate(self.hidden_sizes)]
    self.norms = [layers.batch_norm(synchronized_bn, name=f"bn{i}")
                  for i in range(len(self.hidden_sizes))] if self.use_bn else []

  def features(self, x, training=None):
    h = ops.reshape(x, [-1, math.prod(self.input_shape_)])
    for i, dense in enumerate(self.denses):
      h = dense(h, training=training)
      if self.norms:
        h = self.norms[i](h, training=training)
      h = ops.relu(h)
    return h

  def get_config(self):
    return {**super().get_config(), "hidden_sizes": list(self.hidden_sizes),
            "use_batch_norm": self.use_batch_norm, "batch_norm": self.batch_norm,
            "synchronized_bn": self.synchronized_bn}
