"""Base classes fixing the Models contract shared by every architecture.

Mixed precision: a model built inside ``dtype_policy('bfloat16')`` (or ``'float16'``) keeps float32
variables and computes in 16 bits; whatever the policy, G returns float32 images and D returns
float32 logits and class logits, so losses, penalties and attacks always run in float32.
"""
import contextlib

import keras
from keras import ops

from tfadvgan import errors
from tfadvgan.models import layers

# train.mixed_precision values -> Keras dtype policies of the G and D layers.
MIXED_PRECISION = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def check_mixed_precision(value, binding="train.mixed_precision"):
  """`value` if it is one of MIXED_PRECISION, else a one-line ConfigError."""
  errors.check(isinstance(value, str) and value in MIXED_PRECISION,
               f"{binding} must be one of {', '.join(repr(k) for k in MIXED_PRECISION)}; got "
               f"{value!r}.")
  return value


@contextlib.contextmanager
def dtype_policy(mixed_precision="none"):
  """Builds the layers created inside with the Keras policy of `mixed_precision`, then restores
  the previous global policy (nothing leaks into later builds in the same process)."""
  policy = MIXED_PRECISION[check_mixed_precision(mixed_precision)]
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def to_float32(x):
  """Model outputs leave the model in float32 (no-op without mixed precision)."""
  return ops.cast(x, "float32")


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
    out = self.head_layer(h, labels=labels, training=training)
    return {key: to_float32(value) for key, value in out.items()}
