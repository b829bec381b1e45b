"""A generator for use outside training: a `.keras` file and a SavedModel with a serving signature.

The SavedModel loads with plain TensorFlow, without tfadvgan or Keras:

    g = tf.saved_model.load(path)
    images = g.signatures["serving_default"](z=z)["images"]              # unconditional
    images = g.signatures["serving_default"](z=z, labels=labels)["images"]  # conditional

Inputs: `z` float32 [batch, latent_dim] (the training noise is N(0, 1)); for a conditional
generator `labels` int32 [batch] in [0, num_classes). Output `images`: float32, G in inference
mode (BN moving statistics), [batch, H, W, C] in [-1, 1] for image generators (tanh; uint8 pixels
are `round((images + 1) * 127.5)`), [batch, D] in the data's own units for the MLP generator of
the 2-D toy data. Any batch size.
"""

import tensorflow as tf

from tfadvgan import errors
from tfadvgan.models import base

SIGNATURE = "serving_default"


def check_float32(generator):
  """A ConfigError unless `generator` computes in float32 (exports are float32)."""
  policy = generator.dtype_policy.name
  errors.check(policy == "float32",
               f"The generator to export computes with Keras dtype policy {policy!r}; build it "
               "in float32 (tfadvgan.models.dtype_policy('none'), the default) and copy the "
               "weights: exports are float32.")


def signature(generator):
  """The `tf.TensorSpec`s of the serving function's inputs: z, and labels when conditional."""
  specs = [tf.TensorSpec([None, generator.latent_dim], tf.float32, name="z")]
  if generator.num_classes > 0:
    specs.append(tf.TensorSpec([None], tf.int32, name="labels"))
  return specs


def save_saved_model(generator, path):
  """Writes `generator` as a SavedModel at `path` with the serving signature of the module
  docstring.

  `tf.saved_model.save` of a `tf.Module` that holds G's variables and the serving function, not
  `keras.export.ExportArchive`: TF asks every tracked Keras model for its default signature,
  which Keras builds from the first call's shapes and calls without `labels`, so a conditional
  generator cannot be tracked (Keras 3.15).
  """
  check_float32(generator)
  errors.check(isinstance(generator, base.Generator),
               f"Expected a tfadvgan generator; got {type(generator).__name__}.")
  module = tf.Module()
  module.weights = list(generator.weights)
  if generator.num_classes > 0:
    def serve(z, labels):
      return {"images": generator(z, labels, training=False)}
  else:
    def serve(z):
      return {"images": generator(z, training=False)}
  module.serve = tf.function(serve, input_signature=signature(generator))
  tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})


def description(generator):
  """What `export.json` records about the exported generator's inputs and output."""
  images = len(generator.output_shape_) == 3
  return {
      "signature": SIGNATURE,
      "inputs": {"z": {"dtype": "float32", "shape": [None, generator.latent_dim],
                       "distribution": "N(0, 1)"},
                 **({"labels": {"dtype": "int32", "shape": [None],
                                "range": [0, generator.num_classes - 1]}}
                    if generator.num_classes > 0 else {})},
      "output": {"name": "images", "dtype": "float32",
                 "shape": [None] + list(generator.output_shape_),
                 "range": [-1.0, 1.0] if images else "data units (2-D toy data)"},
  }
