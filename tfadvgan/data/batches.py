"""A user's own `tf.data.Dataset` as GAN training batches (`gan.fit`, `tfadvgan.fit`).

A plain dataset yields image batches `[B, *shape]`, or `(images, labels)` with labels `[B]`. It
becomes the layout of `make_train_dataset`: `n_dis` consecutive examples form one batch row, `B`
rows one train step (each real example is used once; D update k trains on `B` examples), plus the
noise of step s, `pipeline.draw_noise(seed, s)`, as the pipeline draws it for batch s. The noise
is drawn by tf.data on the host, not in the step: XLA's samplers give other values from the same
seeds, and the batches of a step then do not depend on the device or on XLA. Images are used as
given when they are floats (the generator's range is [-1, 1]); uint8 images are scaled from
[0, 255] to [-1, 1].
"""

import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import pipeline

AUTOTUNE = tf.data.AUTOTUNE
_FORMS = ("a dataset of image batches [B, H, W, C] (flat data: [B, D]), of (images, labels) "
          "batches with int labels [B], or the dict batches of tfadvgan.data.make_train_dataset")


def _spec_text(spec):
  return str(tf.nest.map_structure(lambda s: f"{s.dtype.name}{s.shape.as_list()}", spec))


def _split(spec):
  """(images spec, labels spec or None) of a plain dataset's element spec."""
  if isinstance(spec, tf.TensorSpec):
    return spec, None
  errors.check(isinstance(spec, (tuple, list)) and len(spec) == 2
               and all(isinstance(s, tf.TensorSpec) for s in spec),
               f"fit takes {_FORMS}; this dataset yields {_spec_text(spec)}.")
  return spec[0], spec[1]


def _check_images(spec, sample_shape, element):
  shape = spec.shape
  want = [None] + list(sample_shape)
  errors.check(shape.rank == len(want) and shape[1:].as_list() == list(sample_shape),
               f"fit: the dataset's images are {element}, but this GAN's networks take batches "
               f"{want} (None: the batch size); batch samples of shape {tuple(sample_shape)}.")
  errors.check(shape[0] is not None,
               f"fit: the dataset's images are {element}, with no static batch size; batch with "
               "drop_remainder=True (static shapes, one trace of the train step).")
  errors.check(spec.dtype.is_floating or spec.dtype == tf.uint8,
               f"fit: the dataset's images are {spec.dtype.name}; give floats in [-1, 1] or "
               "uint8 in [0, 255].")
  return int(shape[0])


def _check_labels(spec, batch, conditional, element):
  if spec is None:
    errors.check(not conditional,
                 f"fit: this GAN is class-conditional, but the dataset yields images alone "
                 f"({element}); give (images, labels) batches.")
    return
  errors.check(spec.dtype.is_integer and spec.shape.as_list() == [batch],
               f"fit: the dataset's labels are {spec.dtype.name}{spec.shape.as_list()}; give "
               f"integer class ids of shape [{batch}] beside images [{batch}, ...].")


def _check_dict(spec, n_dis):
  images = spec["images"].shape
  errors.check(images.rank is not None and images.rank >= 2 and images[1] == n_dis,
               f"fit: the dict batches' images are {_spec_text(spec['images'])}, but this GAN "
               f"makes n_dis = {n_dis} D updates per step: build them with "
               f"make_train_dataset(..., n_dis={n_dis}), or give plain image batches.")


def steps_per_epoch(steps, per_pass):
  """`steps` checked, or (None) one pass of `per_pass` train steps; ConfigError when neither."""
  if steps is not None:
    return errors.check_int("fit steps_per_epoch", steps, low=1)
  errors.check(per_pass is not None,
               "fit: the dataset is infinite or of unknown size; pass steps_per_epoch.")
  errors.check(per_pass >= 1,
               "fit: one pass over the dataset holds fewer than one train step (batch size x "
               "n_dis examples); give more data or smaller batches.")
  return per_pass


def _grouped(dataset, n_dis, batch):
  """Plain batches as dicts `images` float32 `[B, n_dis, ...]` (and `labels` int32)."""

  def to_dict(*parts):
    images = parts[0]
    if images.dtype == tf.uint8:
      images = tf.cast(images, tf.float32) / 127.5 - 1.0
    out = {"images": tf.cast(images, tf.float32)}
    if len(parts) > 1:
      out["labels"] = tf.cast(parts[1], tf.int32)
    return out

  if n_dis == 1:  # keeps the cardinality and costs no copy
    return dataset.map(lambda *parts: tf.nest.map_structure(
        lambda v: tf.expand_dims(v, 1), to_dict(*parts)), num_parallel_calls=AUTOTUNE)
  out = dataset.unbatch().batch(n_dis, drop_remainder=True).batch(batch, drop_remainder=True)
  return out.map(to_dict, num_parallel_calls=AUTOTUNE)


def train_batches(dataset, n_dis, sample_shape, conditional, latent_dim, num_classes=0, seed=0,
                  first_index=0):
  """`dataset`, repeated, in the layout `GAN.train_step` takes (`GAN.train_batches` fills in the
  GAN's settings).

  Args:
    dataset: a `tf.data.Dataset` of image batches, of `(images, labels)` batches, or of the dict
      batches of `make_train_dataset` (only repeated).
    n_dis: the GAN's D updates per train step.
    sample_shape: shape of one sample (the generator's `output_shape_`).
    conditional: the GAN feeds labels to G and D (labels are then required, and the noise holds
      fake labels).
    latent_dim: size of z.
    num_classes: the generator's classes (fake labels are drawn in [0, num_classes)).
    seed: the noise's seed.
    first_index: the index of the first batch's noise (the GAN's global step: a second `fit`
      continues the noise instead of repeating it).

  Returns:
    (batches, steps): an infinite dataset of dicts `images` float32 `[B, n_dis, *shape]`, with
    labels `labels` int32 `[B, n_dis]`, and the noise `z_d`, `z_g` (and `y_d`, `y_g` when
    conditional) of `make_train_dataset`; and the train steps in one pass over `dataset` (None
    when its cardinality is infinite or unknown).

  Raises:
    ConfigError: an element that is none of these forms, a shape that differs from the
      networks', no static batch size, labels missing for a conditional GAN or not of shape [B].
  """
  errors.check(isinstance(dataset, tf.data.Dataset),
               f"fit takes {_FORMS}; got a {type(dataset).__name__}.")
  spec = dataset.element_spec
  cardinality = int(dataset.cardinality())
  if isinstance(spec, dict):
    errors.check("images" in spec and "z_g" in spec,
                 f"fit takes {_FORMS}; these dicts lack 'images' or the noise: {_spec_text(spec)}.")
    _check_dict(spec, n_dis)
    return dataset.repeat(), (cardinality if cardinality >= 0 else None)
  image_spec, label_spec = _split(spec)
  element = _spec_text(spec)
  batch = _check_images(image_spec, sample_shape, element)
  _check_labels(label_spec, batch, conditional, element)
  classes = num_classes if conditional else 0

  def add_noise(index, batch_dict):
    return dict(batch_dict, **pipeline.draw_noise(seed, index, batch, n_dis, latent_dim, classes))

  out = _grouped(dataset, n_dis, batch).repeat().enumerate(start=first_index)
  out = out.map(add_noise, num_parallel_calls=AUTOTUNE)
  return out.prefetch(AUTOTUNE), (cardinality // n_dis if cardinality >= 0 else None)
