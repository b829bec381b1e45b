"""Base classes fixing the Models contract shared by every architecture."""
import keras

from tfadvgan.models import layers


class Generator(keras.Model):
  """``G(z, labels=None, training=None) -> samples`` in [-1, 1] (tanh).

  Attributes:
    latent_dim: size of ``z``.
    num_classes: 0 for unconditional generators; otherwise ``labels`` are required.
    output_shape_: shape of one sample, e.g. ``(32, 32, 3)`` or ``(2,)``.
  """

  def __init__(self, output_shape, latent_dim, num_classes=0, **kwargs):
    super().__init__(**kwargs)
    self.output_shape_ = tuple(int(d) for d in output_shape)
    self.latent_dim = int(latent_dim)
    self.num_classes = int(num_classes)

  def _labels(self, labels):
    """Returns labels for conditional generators (raising when missing), else None."""
    if self.num_classes > 0:
      layers.check_labels(labels, self.num_classes, "generator")
      return labels
    return None


class Discriminator(keras.Model):
  """``D(x, labels=None, training=None) -> {"logits": [B], ("class_logits": [B, K])}``.

  Subclasses implement ``features(x, training)`` returning ``[B, F]``; the head is shared.

  Attributes:
    head: "plain" | "ac" | "projection".
    num_classes: number of classes (0 when unconditional).
    input_shape_: shape of one input sample.
  """

  def __init__(self, input_shape, head="plain", num_classes=0, use_spectral_norm=False,
               kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.input_shape_ = tuple(int(d) for d in input_shape)
    self.head = head
    self.num_classes = int(num_classes)
    self.head_layer = layers.DiscriminatorHead(
        head, num_classes, use_spectral_norm=use_spectral_norm,
        kernel_initializer=kernel_initializer, name="head")

  def features(self, x, training=None):
    raise NotImplementedError

  def call(self, x, labels=None, training=None):
    h = self.features(x, training=training)
    return self.head_layer(h, labels=labels, training=training)
