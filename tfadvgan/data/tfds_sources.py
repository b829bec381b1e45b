"""TensorFlow Datasets sources: cifar10, cifar100, celeb_a, lsun_bedroom, imagenet143, mnist,
fashion_mnist.

`tensorflow_datasets` is imported on first use, so importing `tfadvgan.data` stays fast.
"""
from absl import logging
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import registry
from tfadvgan.data import sources
from tfadvgan.data import transforms


_TFDS_OPTIONS = ("data_dir", "download", "resolution")

# ImageNet classes kept by `imagenet143` (0-based TFDS ids, inclusive), remapped to 0..142.
IMAGENET143_FIRST = 151
IMAGENET143_LAST = 293
IMAGENET143_RESOLUTIONS = (64, 128)

# CelebA (178x218 aligned faces): central 140x140 crop, then resize (default 64).
CELEBA_CROP = 140


def _tfds_error(name, split, data_dir, download, e):
  where = data_dir or "the TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR)"
  detail = (str(e).strip().splitlines() or [""])[0][:300]
  hint = (f"Set dataset.data_dir (the --data_dir flag) to a directory holding the prepared "
          f"TFDS data for {name!r}, or prepare it with `tfds build {name} --data_dir=DIR` on a "
          f"machine with internet access")
  if name.startswith("imagenet2012"):
    hint += (" (ImageNet needs a manual download: put ILSVRC2012_img_train.tar and "
             "ILSVRC2012_img_val.tar in DIR/downloads/manual)")
  if not download:
    hint += ", or set dataset.download = True"
  return errors.ConfigError(
      f"Could not load TFDS dataset {name!r} (split {split!r}) from data_dir={where}: "
      f"{type(e).__name__}: {detail}. {hint}.")


def _tfds_records(name, split, data_dir, download):
  """`(records, info, num_files, num_examples)` of a TFDS split, images left encoded.

  `records(P, i, seed)` reads files i, i + P, ... (TFDS `ReadConfig(input_context=...)`),
  shuffling their order with `seed` each epoch; with fewer files than pipelines it reads every
  file and keeps every P-th example (one warning line says so). Elements are dicts of TFDS
  features with `image` as encoded bytes.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    if download:
      builder.download_and_prepare()
    info = builder.info
  except Exception as e:  # pylint: disable=broad-except
    raise _tfds_error(name, split, data_dir, download, e) from e
  try:
    split_info = info.splits[split]
    num_files, num_examples = len(split_info.file_instructions), split_info.num_examples
  except (KeyError, ValueError):  # no split metadata (as under tfds.testing.mock_data)
    num_files, num_examples = 0, None
  decoders = {"image": tfds.decode.SkipDecoding()}

  def records(num_shards, index, seed):
    by_file = 1 < num_shards <= num_files
    if num_shards > max(num_files, 1) and index == 0:
      logging.warning(
          "TFDS %r split %r has %d file(s) for %d input pipelines: every pipeline reads every "
          "file and keeps 1/%d of the examples (decoding only those).", name, split, num_files,
          num_shards, num_shards)
    context = (tf.distribute.InputContext(num_input_pipelines=num_shards,
                                          input_pipeline_id=index) if by_file else None)
    config = tfds.ReadConfig(input_context=context, shuffle_seed=seed,
                             shuffle_reshuffle_each_iteration=True)
    try:
      ds = builder.as_dataset(split=split, decoders=decoders, read_config=config,
                              shuffle_files=seed is not None)
    except Exception as e:  # pylint: disable=broad-except
      raise _tfds_error(name, split, data_dir, download, e) from e
    return ds if by_file else sources.shard_examples(ds, num_shards, index)

  records(1, 0, None)  # a missing or unreadable split fails here, at load time
  return records, info, num_files, num_examples


def _tfds_source(name, split, data_dir, download, source_name, decode, finish, keep=None,
                 num_classes=None):
  """A TFDS Source: `decode(encoded image bytes, image feature)` -> stored uint8 image,
  `finish` stored -> [-1, 1]; `keep(example)` filters before decoding; labels where the
  dataset has them (`num_classes` overrides the dataset's count)."""
  records, info, num_files, total = _tfds_records(name, split, data_dir, download)
  feature = info.features["image"]
  labelled = "label" in info.features
  if num_classes is None:
    num_classes = info.features["label"].num_classes if labelled else 0

  def source_records(num_shards, index, seed):
    ds = records(num_shards, index, seed)
    if keep is not None:
      ds = ds.filter(keep)
    if num_classes:
      return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
    return ds.map(lambda ex: ex["image"])

  def stored(image):  # encoded bytes (a mocked TFDS may hand over decoded images)
    return decode(feature.decode_example(image) if image.dtype == tf.string else image)

  spec = source_records(1, 0, None).element_spec
  stored_shape = _stored_shape(stored, spec[0] if num_classes else spec)
  shape = tuple(finish(tf.zeros(stored_shape, tf.uint8)).shape.as_list())
  return sources.Source(source_records, num_classes, shape, source_name, decode=stored,
                        finish=finish, num_examples=total if keep is None else None,
                        max_examples=total, file_shards=num_files)


def _stored_shape(decode, spec):
  """The static shape `decode` gives for a record of `spec`."""
  return tf.function(decode).get_concrete_function(spec).structured_outputs.shape


def _resized(convert):
  """A decode step that crops/resizes in [-1, 1] (`convert`) and stores the result as uint8."""
  return lambda image: transforms.to_uint8(convert(transforms.to_unit_range(image)))


def _cifar(tfds_name, split, data_dir, download, resolution):
  return _tfds_source(
      tfds_name, split, data_dir, download, tfds_name, decode=lambda x: x,
      finish=lambda x: transforms.maybe_resize(transforms.to_unit_range(x), resolution))


@registry.register("cifar10", splits=("train", "test"), options=_TFDS_OPTIONS, tfds_slicing=True)
def load_cifar10(split, data_dir, download, resolution):
  """CIFAR-10 from TFDS: 32x32x3, 10 classes (`resolution` resizes)."""
  return _cifar("cifar10", split, data_dir, download, resolution)


@registry.register("cifar100", splits=("train", "test"), options=_TFDS_OPTIONS, tfds_slicing=True)
def load_cifar100(split, data_dir, download, resolution):
  """CIFAR-100 from TFDS: 32x32x3, 100 fine classes (`resolution` resizes)."""
  return _cifar("cifar100", split, data_dir, download, resolution)


@registry.register("celeb_a", splits=("train", "validation", "test"), options=_TFDS_OPTIONS,
                  tfds_slicing=True)
def load_celeb_a(split, data_dir, download, resolution):
  """CelebA from TFDS, unlabelled: central 140x140 crop, resized to `resolution` (default 64)."""
  resolution = resolution or 64
  return _tfds_source(
      "celeb_a", split, data_dir, download, "celeb_a",
      decode=_resized(lambda x: transforms.resize(transforms.center_crop(x, CELEBA_CROP),
                                                  resolution)),
      finish=transforms.to_unit_range, num_classes=0)


@registry.register("lsun_bedroom", splits=("train", "validation"), options=_TFDS_OPTIONS,
                  split_aliases={"test": "validation"}, tfds_slicing=True)
def load_lsun_bedroom(split, data_dir, download, resolution):
  """LSUN bedrooms (TFDS `lsun/bedroom`), unlabelled: shorter side resized to `resolution`
  (default 64), then central square crop."""
  resolution = resolution or 64
  return _tfds_source(
      "lsun/bedroom", split, data_dir, download, "lsun_bedroom",
      decode=_resized(lambda x: transforms.resize_shorter_and_crop(x, resolution)),
      finish=transforms.to_unit_range)


@registry.register("imagenet143", splits=("train", "validation"), options=_TFDS_OPTIONS,
                  split_aliases={"test": "validation"}, tfds_slicing=True)
def load_imagenet143(split, data_dir, download, resolution):
  """ImageNet classes 151..293 (TFDS `imagenet2012` ids), relabelled 0..142.

  Images are centre-cropped to a square and resized to `resolution` (64, the default, or 128).
  The other classes are dropped before their JPEGs are decoded.
  """
  resolution = resolution or 64
  errors.check(
      resolution in IMAGENET143_RESOLUTIONS,
      f"imagenet143 supports dataset.resolution in {IMAGENET143_RESOLUTIONS}, got {resolution}.")

  def keep(ex):
    return (ex["label"] >= IMAGENET143_FIRST) & (ex["label"] <= IMAGENET143_LAST)

  source = _tfds_source(
      "imagenet2012", split, data_dir, download, "imagenet143",
      decode=_resized(lambda x: transforms.crop_square_and_resize(x, resolution)),
      finish=transforms.to_unit_range, keep=keep,
      num_classes=IMAGENET143_LAST - IMAGENET143_FIRST + 1)
  inner = source.records

  def records(num_shards, index, seed):
    return inner(num_shards, index, seed).map(lambda x, y: (x, y - IMAGENET143_FIRST))

  return source.replace(records=records)


def _small(tfds_name, split, data_dir, download, resolution, pad):
  return _tfds_source(
      tfds_name, split, data_dir, download, tfds_name, decode=lambda x: x,
      finish=lambda x: transforms.pad_or_resize_28(transforms.to_unit_range(x), pad, resolution))


@registry.register("mnist", splits=("train", "test"), options=_TFDS_OPTIONS + ("pad",),
                  tfds_slicing=True)
def load_mnist(split, data_dir, download, resolution, pad):
  """MNIST from TFDS: 28x28x1 padded with -1 to 32x32 (or resized with pad=False)."""
  return _small("mnist", split, data_dir, download, resolution, pad)


@registry.register("fashion_mnist", splits=("train", "test"), options=_TFDS_OPTIONS + ("pad",),
                  tfds_slicing=True)
def load_fashion_mnist(split, data_dir, download, resolution, pad):
  """Fashion-MNIST from TFDS: 28x28x1 padded with -1 to 32x32 (or resized with pad=False)."""
  return _small("fashion_mnist", split, data_dir, download, resolution, pad)
