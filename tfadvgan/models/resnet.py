"""ResNet generator and discriminator for 32, 64 and 128 px (SNGAN / WGAN-GP style).

Blocks (Miyato et al. 2018, Gulrajani et al. 2017):

* G block: ``BN-ReLU-Upsample-Conv3x3-BN-ReLU-Conv3x3`` plus skip ``Upsample-Conv1x1``;
  upsampling is ``UpSampling2D(2)`` with ``upsampling`` interpolation: "bilinear" (default; the
  AS-GAN release) or "nearest" (SNGAN, the Rob-GAN and Fast-RobGAN releases); BN is
  ConditionalBatchNorm when ``num_classes > 0``.
* D block: ``[BN]-ReLU-Conv3x3-[BN]-ReLU-Conv3x3-AvgPool2`` plus skip ``Conv1x1-AvgPool2``
  (downsampling after the convolutions, as in SNGAN and WGAN-GP; blocks that neither change the
  channel count nor downsample use an identity skip). The first D block is SNGAN's "optimized"
  block ``Conv3x3-ReLU-Conv3x3-AvgPool`` with skip ``AvgPool-Conv1x1`` (no pre-activation on the
  raw image, no BN). BN is used when ``batch_norm`` and not ``spectral_norm`` (SNGAN has none).
* G: ``Dense(4*4*ch0)`` -> blocks -> ``BN-ReLU-Conv3x3(C)-tanh`` (that final BN is unconditional,
  as in SNGAN). D: blocks -> ReLU -> global *sum* pooling -> head.
* All kernels Glorot-uniform, convs and denses with bias.

Channel plans, with width ``c``:

===  =========  ===============================  ==========================================
res  default c  G: 4x4 map -> blocks (x2 up)     D: blocks (d = downsample, opt = first)
===  =========  ===============================  ==========================================
32   128        c -> c, c, c                     c d (opt), c d, c, c
64   64         16c -> 8c, 4c, 2c, c             c d (opt), 2c d, 4c d, 8c d, 16c d
128  64         16c -> 16c, 8c, 4c, 2c, c        c d (opt), 2c d, 4c d, 8c d, 16c d, 16c
===  =========  ===============================  ==========================================

The 32 px plan is the CIFAR-10 ResNet of WGAN-GP/SNGAN (SNGAN's G uses c=256); 64 and 128 px follow
the SNGAN/projection-discriminator ImageNet models (ch=64). `plan = "small"` (128 px only) is the
dogs-and-cats net capped at 8c of the Rob-GAN release (`resnet_small`), SNGAN's
`snresnet_dog_and_cat_128` and fastgan's `catdog128`:
G 8c -> 8c, 4c, 4c, 2c, c; D c d (opt), 2c d, 4c d, 4c d, 8c d, 8c.
`plan = "same"` (32 and 64 px) is the AS-GAN release's "same width" nets (`resnet32_same`,
`resnet64_same`): c = 256 by default in every block; G c -> c, c, c (32 px) or c, c, c, c (64 px)
and a 1x1 output conv; D c d (opt) then c d in every block (4 blocks at 32 px, 5 at 64 px, down
to 2x2); the D blocks' two residual convs start from Xavier-uniform with gain sqrt(2), as the
release's `_initialize` does (its G blocks never call theirs: our G keeps gain 1).
"""
import math

import gin
import keras
from keras import ops

from tfadvgan.models import base
from tfadvgan.models import layers

RESOLUTIONS = (32, 64, 128)
DEFAULT_WIDTH = {32: 128, 64: 64, 128: 64}
# What a plan changes besides its channels: default width (None: DEFAULT_WIDTH[res]), G's output
# conv kernel, Xavier gain of the D blocks' residual convs.
_PLAN_DEFAULTS = {"width": None, "to_image_kernel": 3, "residual_gain": 1.0}
PLAN_OPTIONS = {"same": {"width": 256, "to_image_kernel": 1, "residual_gain": math.sqrt(2.0)}}


def _option(plan, key):
  return PLAN_OPTIONS.get(plan, {}).get(key, _PLAN_DEFAULTS[key])
# plan -> resolution -> (first-map multiplier, block output multipliers)
G_PLANS = {
    "sngan": {32: (1, (1, 1, 1)), 64: (16, (8, 4, 2, 1)), 128: (16, (16, 8, 4, 2, 1))},
    "small": {128: (8, (8, 4, 4, 2, 1))},
    "same": {32: (1, (1, 1, 1)), 64: (1, (1, 1, 1, 1))},
}
# plan -> resolution -> (multiplier, downsample) per block; the first block is the optimized block.
D_PLANS = {
    "sngan": {
        32: ((1, True), (1, True), (1, False), (1, False)),
        64: ((1, True), (2, True), (4, True), (8, True), (16, True)),  # snresnet_64: ends at 2x2
        128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
    },
    "small": {128: ((1, True), (2, True), (4, True), (4, True), (8, True), (8, False))},
    "same": {32: ((1, True),) * 4, 64: ((1, True),) * 5},
}


def _width(width, plan, res):
  return width or _option(plan, "width") or DEFAULT_WIDTH[res]


def _conv(channels, kernel_size, use_spectral_norm, name, gain=1.0):
  return layers.spectral_norm(
      keras.layers.Conv2D(channels, kernel_size, padding="same",
                          kernel_initializer=layers.glorot_init(gain), name=name),
      use_spectral_norm)


@layers.register
class GBlock(layers.Serializable, keras.layers.Layer):
  """Upsampling residual block of the generator."""

  def __init__(self, channels, num_classes=0, use_spectral_norm=False, synchronized_bn=False,
               upsampling="bilinear", **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.num_classes = num_classes
    self.use_spectral_norm = use_spectral_norm
    self.synchronized_bn = synchronized_bn
    self.upsampling = upsampling
    self.norm1 = layers.GeneratorNorm(num_classes, synchronized_bn, name="norm1")
    self.norm2 = layers.GeneratorNorm(num_classes, synchronized_bn, name="norm2")
    self.up = keras.layers.UpSampling2D(2, interpolation=upsampling, name="up")
    self.conv1 = _conv(channels, 3, use_spectral_norm, "conv1")
    self.conv2 = _conv(channels, 3, use_spectral_norm, "conv2")
    self.skip = _conv(channels, 1, use_spectral_norm, "skip")

  def call(self, x, labels=None, training=None):
    h = ops.relu(self.norm1(x, labels, training=training))
    h = self.conv1(self.up(h), training=training)
    h = ops.relu(self.norm2(h, labels, training=training))
    h = self.conv2(h, training=training)
    return h + self.skip(self.up(x), training=training)

  def get_config(self):
    return {**super().get_config(), "channels": self.channels, "num_classes": self.num_classes,
            "use_spectral_norm": self.use_spectral_norm,
            "synchronized_bn": self.synchronized_bn, "upsampling": self.upsampling}


@layers.register
class DBlock(layers.Serializable, keras.layers.Layer):
  """Residual block of the discriminator (``optimized`` for the first one)."""

  def __init__(self, in_channels, channels, downsample=True, optimized=False, batch_norm=False,
               use_spectral_norm=False, synchronized_bn=False, residual_gain=1.0, **kwargs):
    super().__init__(**kwargs)
    self.in_channels = in_channels
    self.channels = channels
    self.downsample = downsample
    self.optimized = optimized
    self.batch_norm = batch_norm
    self.use_spectral_norm = use_spectral_norm
    self.synchronized_bn = synchronized_bn
    self.residual_gain = residual_gain
    self.pool = keras.layers.AveragePooling2D(2, name="pool") if downsample else None
    self.conv1 = _conv(channels, 3, use_spectral_norm, "conv1", residual_gain)
    self.conv2 = _conv(channels, 3, use_spectral_norm, "conv2", residual_gain)
    use_bn = batch_norm and not optimized
    self.norm1 = layers.batch_norm(synchronized_bn, name="bn1") if use_bn else None
    self.norm2 = layers.batch_norm(synchronized_bn, name="bn2") if use_bn else None
    learnable = optimized or downsample or in_channels != channels
    self.skip = _conv(channels, 1, use_spectral_norm, "skip") if learnable else None

  def _bn(self, norm, h, training):
    return h if norm is None else norm(h, training=training)

  def call(self, x, training=None):
    h = x
    if not self.optimized:
      h = ops.relu(self._bn(self.norm1, h, training))
    h = self.conv1(h, training=training)
    h = ops.relu(self._bn(self.norm2, h, training))
    h = self.conv2(h, training=training)
    if self.downsample:
      h = self.pool(h)
    s = x
    if self.optimized:
      s = self.skip(self.pool(s), training=training)
    elif self.skip is not None:
      s = self.skip(s, training=training)
      if self.downsample:
        s = self.pool(s)
    return h + s

  def get_config(self):
    return {**super().get_config(), "in_channels": self.in_channels, "channels": self.channels,
            "downsample": self.downsample, "optimized": self.optimized,
            "batch_norm": self.batch_norm, "use_spectral_norm": self.use_spectral_norm,
            "synchronized_bn": self.synchronized_bn, "residual_gain": self.residual_gain}


@layers.register
@gin.configurable
class ResNetGenerator(base.Generator):
  """ResNet generator (see module docstring).

  Args:
    output_shape: ``(H, W, C)`` with ``H == W`` in ``RESOLUTIONS``.
    latent_dim: size of ``z``.
    num_classes: > 0 for a class-conditional generator (conditional BN in every block).
    width: base channel count ``c`` (default ``DEFAULT_WIDTH[H]``).
    use_spectral_norm: spectrally normalise every conv/dense.
    synchronized_bn: synchronise BN statistics across replicas.
    upsampling: "bilinear" or "nearest" interpolation in every block.
    plan: "sngan" (the table above), "small" (128 px, capped at 8c) or "same" (AS-GAN's release).
  """

  def __init__(self, output_shape, latent_dim=128, num_classes=0, width=None,
               use_spectral_norm=False, synchronized_bn=False, upsampling="bilinear",
               plan="sngan", **kwargs):
    super().__init__(output_shape, latent_dim, num_classes, **kwargs)
    self.width = width
    self.use_spectral_norm = use_spectral_norm
    self.synchronized_bn = synchronized_bn
    self.upsampling = upsampling
    self.plan = plan
    res, _, channels = self.output_shape_
    c = _width(width, plan, res)
    first, mults = G_PLANS[plan][res]
    self.base_channels = first * c
    self.project = layers.spectral_norm(
        keras.layers.Dense(4 * 4 * self.base_channels, kernel_initializer=layers.glorot_init(),
                           name="project"), use_spectral_norm)
    self.blocks = [GBlock(m * c, num_classes, use_spectral_norm, synchronized_bn, upsampling,
                          name=f"block{i}") for i, m in enumerate(mults)]
    self.norm = layers.batch_norm(synchronized_bn, name="bn_out")
    self.to_image = _conv(channels, _option(plan, "to_image_kernel"), use_spectral_norm, "to_image")

  def call(self, z, labels=None, training=None):
    labels = self._labels(labels)
    h = ops.reshape(self.project(z, training=training), [-1, 4, 4, self.base_channels])
    for block in self.blocks:
      h = block(h, labels, training=training)
    h = ops.relu(self.norm(h, training=training))
    return base.to_float32(ops.tanh(self.to_image(h, training=training)))

  def get_config(self):
    return {**super().get_config(), "width": self.width,
            "use_spectral_norm": self.use_spectral_norm, "synchronized_bn": self.synchronized_bn,
            "upsampling": self.upsampling, "plan": self.plan}


@layers.register
@gin.configurable
class ResNetDiscriminator(base.Discriminator):
  """ResNet discriminator (see module docstring).

  Args:
    input_shape: ``(H, W, C)`` with ``H == W`` in ``RESOLUTIONS``.
    head: "plain" | "ac" | "projection".
    num_classes: number of classes for the ac/projection heads.
    width: base channel count ``c`` (default ``DEFAULT_WIDTH[H]``).
    use_spectral_norm: spectrally normalise every conv/dense (and drop BN).
    batch_norm: BN inside the non-first blocks; None: on unless ``use_spectral_norm``.
    synchronized_bn: synchronise BN statistics across replicas.
    plan: "sngan" (the table above), "small" (128 px, capped at 8c) or "same" (AS-GAN's release).
  """

  def __init__(self, input_shape, head="plain", num_classes=0, width=None,
               use_spectral_norm=False, batch_norm=None, synchronized_bn=False, plan="sngan",
               **kwargs):
    super().__init__(input_shape, head, num_classes, use_spectral_norm,
                     kernel_initializer=layers.glorot_init(), **kwargs)
    self.width = width
    self.batch_norm = batch_norm
    self.synchronized_bn = synchronized_bn
    self.plan = plan
    res, _, channels = self.input_shape_
    c = _width(width, plan, res)
    self.use_bn = layers.use_batch_norm(batch_norm, use_spectral_norm)
    self.blocks = []
    in_ch = channels
    for i, (m, down) in enumerate(D_PLANS[plan][res]):
      self.blocks.append(DBlock(in_ch, m * c, downsample=down, optimized=(i == 0),
                                batch_norm=self.use_bn, use_spectral_norm=use_spectral_norm,
                                synchronized_bn=synchronized_bn,
                                residual_gain=_option(plan, "residual_gain"), name=f"block{i}"))
      in_ch = m * c

  def features(self, x, training=None):
    h = x
    for block in self.blocks:
      h = block(h, training=training)
    return layers.global_sum_pool(ops.relu(h))

  def get_config(self):
    return {**super().get_config(), "width": self.width, "batch_norm": self.batch_norm,
            "synchronized_bn": self.synchronized_bn, "plan": self.plan}
