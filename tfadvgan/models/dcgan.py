"""DCGAN generator and discriminator for 32 and 64 px images (Radford et al. 2016).

As in the AS-GAN paper (Sec. 4), with width ``c`` (default 64):

* D: ``Conv(4x4, stride 2, 'same')-[BN]-LeakyReLU(0.2)`` blocks with ``c, 2c, 4c`` channels for
  32 px (``c, 2c, 4c, 8c`` for 64 px), so the last map is 4x4; no BN on the first block; then
  flatten and the head (a Dense(1) on the flattened 4x4 map is the usual 4x4 'valid' conv).
  ``batch_norm`` None (default) uses BN unless ``spectral_norm`` (SNGAN's SN discriminators have
  none); True or False decides explicitly (AS-GAN's release keeps BN after its SN convs).
* G: ``Dense(4*4*4c)-BN-ReLU`` (``8c`` for 64 px), then ``ConvTranspose(4x4, stride 2)-BN-ReLU``
  halving the channels each time (32 px: ``2c, c``; 64 px: ``4c, 2c, c``), and a last
  ``ConvTranspose(4x4, stride 2)`` to the image channels with tanh. With ``num_classes > 0`` every
  BN is a ConditionalBatchNorm.
* Every kernel (convs, the G projection, the head) is initialised N(0, 0.02); convs and the G
  projection have ``use_bias=False``; the head's Dense layers keep their bias.
"""
import gin
import keras
from keras import ops

from tfadvgan.models import base
from tfadvgan.models import layers

RESOLUTIONS = (32, 64)
LEAKY_SLOPE = 0.2


def _num_blocks(resolution):
  return {32: 3, 64: 4}[resolution]


@layers.register
@gin.configurable
class DCGANGenerator(base.Generator):
  """DCGAN generator (see module docstring).

  Args:
    output_shape: ``(H, W, C)`` with ``H == W`` in ``RESOLUTIONS``.
    latent_dim: size of ``z``.
    num_classes: > 0 for a class-conditional generator (conditional BN).
    width: base channel count ``c`` (default 64); the first feature map has ``c * 2**(n-1)``.
    use_spectral_norm: spectrally normalise every conv/dense.
    synchronized_bn: synchronise BN statistics across replicas.
  """

  def __init__(self, output_shape, latent_dim=100, num_classes=0, width=None,
               use_spectral_norm=False, synchronized_bn=False, **kwargs):
    super().__init__(output_shape, latent_dim, num_classes, **kwargs)
    self.width = width
    self.synchronized_bn = synchronized_bn
    self.use_spectral_norm = use_spectral_norm
    res, _, channels = self.output_shape_
    c = width or 64
    n = _num_blocks(res)  # number of upsamplings: 4 -> res
    self.base_channels = c * 2 ** (n - 1)
    init = layers.dcgan_init
    self.project = layers.spectral_norm(
        keras.layers.Dense(4 * 4 * self.base_channels, use_bias=False,
                           kernel_initializer=init(), name="project"), use_spectral_norm)
    self.norms = [layers.GeneratorNorm(num_classes, synchronized_bn, name="norm0")]
    self.deconvs = []
    for i in range(1, n):
      ch = self.base_channels // 2 ** i
      self.deconvs.append(layers.spectral_norm(
          keras.layers.Conv2DTranspose(ch, 4, strides=2, padding="same", use_bias=False,
                                       kernel_initializer=init(), name=f"deconv{i}"),
          use_spectral_norm))
      self.norms.append(layers.GeneratorNorm(num_classes, synchronized_bn, name=f"norm{i}"))
    self.to_image = layers.spectral_norm(
        keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False,
                                     kernel_initializer=init(), name="to_image"),
        use_spectral_norm)

  def call(self, z, labels=None, training=None):
    labels = self._labels(labels)
    h = self.project(z, training=training)
    h = ops.reshape(h, [-1, 4, 4, self.base_channels])
    h = ops.relu(self.norms[0](h, labels, training=training))
    for deconv, norm in zip(self.deconvs, self.norms[1:]):
      h = ops.relu(norm(deconv(h, training=training), labels, training=training))
    return base.to_float32(ops.tanh(self.to_image(h, training=training)))

  def get_config(self):
    return {**super().get_config(), "width": self.width,
            "use_spectral_norm": self.use_spectral_norm, "synchronized_bn": self.synchronized_bn}


@layers.register
@gin.configurable
class DCGANDiscriminator(base.Discriminator):
  """DCGAN discriminator (see module docstring).

  Args:
    input_shape: ``(H, W, C)`` with ``H == W`` in ``RESOLUTIONS``.
    head: "plain" | "ac" | "projection".
    num_classes: number of classes for the ac/projection heads.
    width: base channel count ``c`` (default 64).
    use_spectral_norm: spectrally normalise every conv/dense.
    batch_norm: BN on blocks 2..; None: on unless ``use_spectral_norm``.
    synchronized_bn: synchronise BN statistics across replicas.
  """

  def __init__(self, input_shape, head="plain", num_classes=0, width=None,
               use_spectral_norm=False, batch_norm=None, synchronized_bn=False, **kwargs):
    super().__init__(input_shape, head, num_classes, use_spectral_norm,
                     kernel_initializer=layers.dcgan_init(), **kwargs)
    self.width = width
    self.batch_norm = batch_norm
    self.synchronized_bn = synchronized_bn
    res = self.input_shape_[0]
    c = width or 64
    self.use_bn = layers.use_batch_norm(batch_norm, use_spectral_norm)
    self.convs, self.norms = [], []
    for i in range(_num_blocks(res)):
      self.convs.append(layers.spectral_norm(
          keras.layers.Conv2D(c * 2 ** i, 4, strides=2, padding="same", use_bias=False,
                              kernel_initializer=layers.dcgan_init(), name=f"conv{i}"),
          use_spectral_norm))
      self.norms.append(layers.batch_norm(synchronized_bn, name=f"bn{i}")
                        if (self.use_bn and i > 0) else None)
    self.activation = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="lrelu")

  def features(self, x, training=None):
    h = x
    for conv, norm in zip(self.convs, self.norms):
      h = conv(h, training=training)
      if norm is not None:
        h = norm(h, training=training)
      h = self.activation(h)
    return ops.reshape(h, [-1, h.shape[1] * h.shape[2] * h.shape[3]])

  def get_config(self):
    return {**super().get_config(), "width": self.width, "batch_norm": self.batch_norm,
            "synchronized_bn": self.synchronized_bn}
