"""Base classes fixing the Models contract shared by every architecture.

Mixed precision: a model built inside ``dtype_policy('bfloat16')`` (or ``'float16'``) keeps float32
variables and computes in 16 bits; whatever the policy, G returns float32 images and D returns
float32 logits and class logits, so losses, penalties and attacks always run in float32.

Saving: every architecture saves to and loads from ``.keras`` (see "Saving" in ``layers``). A model
creates its weights with one inference call on zeros (``create_weights``): the builders call it,
and so does ``keras.models.load_model`` (``build_from_config``) before it reads the weights.
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
  with layers.keras_policy(MIXED_PRECISION[check_mixed_precision(mixed_precision)]):
    yield


def to_float32(x):
  """Model outputs leave the model in float32 (no-op without mixed precision)."""
  return ops.cast(x, "float32")


_BUILD_BATCH = 2


class _Network(layers.Serializable, keras.Model):
  """What Generator and Discriminator share: weights made by a call on zeros (also on load)."""

  def _zeros_labels(self):
    return ops.zeros([_BUILD_BATCH], dtype="int32") if self.num_classes > 0 else None

  def create_weights(self):
    """Creates every weight with one inference call on a batch of zeros (and labels 0)."""
    raise NotImplementedError

  def get_build_config(self):
    return {"create_weights": True} if self.built else None

  def build_from_config(self, config):
    if config.get("create_weights"):
      self.create_weights()


class Generator(_Network):
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

  def create_weights(self):
    self(ops.zeros([_BUILD_BATCH, self.latent_dim]), labels=self._zeros_labels(), training=False)

  def get_config(self):
    return {**super().get_config(), "output_shape": list(self.output_shape_),
            "latent_dim": self.latent_dim, "num_classes": self.num_classes}

  def _labels(self, labels):
    """Returns labels for conditional generators (raising when missing), else None."""
    if self.num_classes > 0:
      layers.check_labels(labels, self.num_classes, "generator")
      return labels
    return None


class Discriminator(_Network):
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
    self.use_spectral_norm = use_spectral_norm
    self.head_layer = layers.DiscriminatorHead(
        head, num_classes, use_spectral_norm=use_spectral_norm,
        kernel_initializer=kernel_initializer, name="head")

  def create_weights(self):
    self(ops.zeros((_BUILD_BATCH,) + self.input_shape_), labels=self._zeros_labels(),
         training=False)

  def get_config(self):
    return {**super().get_config(), "input_shape": list(self.input_shape_), "head": self.head,
            "num_classes": self.num_classes, "use_spectral_norm": self.use_spectral_norm}

  def features(self, x, training=None):
    raise NotImplementedError

  def call(self, x, labels=None, training=None):
    h = self.features(x, training=training)
    out = self.head_layer(h, labels=labels, training=training)
    return {key: to_float32(value) for key, value in out.items()}
