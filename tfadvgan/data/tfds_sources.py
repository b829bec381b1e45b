"""TensorFlow Datasets sources: cifar10, cifar100, celeb_a, lsun_bedroom, imagenet143, mnist,
fashion_mnist.

`tensorflow_datasets` is imported on first use, so importing `tfadvgan.data` stays fast.
"""
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import sources
from tfadvgan.data import transforms

AUTOTUNE = tf.data.AUTOTUNE

_TFDS_OPTIONS = ("data_dir", "download", "resolution")

# ImageNet classes kept by `imagenet143` (0-based TFDS ids, inclusive), remapped to 0..142.
IMAGENET143_FIRST = 151
IMAGENET143_LAST = 293
IMAGENET143_RESOLUTIONS = (64, 128)

# CelebA (178x218 aligned faces): central 140x140 crop, then resize (default 64).
CELEBA_CROP = 140


def _tfds_load(name, split, data_dir, download, decoders=None):
  """Calls `tfds.load`, turning any failure to find or fetch the data into a ConfigError."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.load(name, split=split, data_dir=data_dir, download=download,
                     shuffle_files=False, with_info=True, decoders=decoders)
  except Exception as e:  # pylint: disable=broad-except
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
    raise errors.ConfigError(
        f"Could not load TFDS dataset {name!r} (split {split!r}) from data_dir={where}: "
        f"{type(e).__name__}: {detail}. {hint}.") from e


def _labelled(ds, info, name, convert):
  """Maps TFDS feature dicts to `(image, int32 label)` and builds the Source."""
  ds = ds.map(lambda ex: (convert(ex["image"]), tf.cast(ex["label"], tf.int32)),
              num_parallel_calls=AUTOTUNE)
  num_classes = info.features["label"].num_classes
  return sources.Source(ds, num_classes, tuple(ds.element_spec[0].shape.as_list()), name)


def _unlabelled(ds, name, convert):
  ds = ds.map(lambda ex: convert(ex["image"]), num_parallel_calls=AUTOTUNE)
  return sources.Source(ds, 0, tuple(ds.element_spec.shape.as_list()), name)


def _cifar(tfds_name, split, data_dir, download, resolution):
  ds, info = _tfds_load(tfds_name, split, data_dir, download)
  return _labelled(
      ds, info, tfds_name,
      lambda x: transforms.maybe_resize(transforms.to_unit_range(x), resolution))


@sources.register("cifar10", splits=("train", "test"), options=_TFDS_OPTIONS, tfds_slicing=True)
def load_cifar10(split, data_dir, download, resolution):
  """CIFAR-10 from TFDS: 32x32x3, 10 classes (`resolution` resizes)."""
  return _cifar("cifar10", split, data_dir, download, resolution)


@sources.register("cifar100", splits=("train", "test"), options=_TFDS_OPTIONS, tfds_slicing=True)
def load_cifar100(split, data_dir, download, resolution):
  """CIFAR-100 from TFDS: 32x32x3, 100 fine classes (`resolution` resizes)."""
  return _cifar("cifar100", split, data_dir, download, resolution)


@sources.register("celeb_a", splits=("train", "validation", "test"), options=_TFDS_OPTIONS,
                  tfds_slicing=True)
def load_celeb_a(split, data_dir, download, resolution):
  """CelebA from TFDS, unlabelled: central 140x140 crop, resized to `resolution` (default 64)."""
  resolution = resolution or 64
  ds, _ = _tfds_load("celeb_a", split, data_dir, download)
  return _unlabelled(
      ds, "celeb_a",
      lambda x: transforms.resize(
          transforms.center_crop(transforms.to_unit_range(x), CELEBA_CROP), resolution))


@sources.register("lsun_bedroom", splits=("train", "validation"), options=_TFDS_OPTIONS,
                  split_aliases={"test": "validation"}, tfds_slicing=True)
def load_lsun_bedroom(split, data_dir, download, resolution):
  """LSUN bedrooms (TFDS `lsun/bedroom`), unlabelled: shorter side resized to `resolution`
  (default 64), then central square crop."""
  resolution = resolution or 64
  ds, _ = _tfds_load("lsun/bedroom", split, data_dir, download)
  return _unlabelled(
      ds, "lsun_bedroom",
      lambda x: transforms.resize_shorter_and_crop(transforms.to_unit_range(x), resolution))


@sources.register("imagenet143", splits=("train", "validation"), options=_TFDS_OPTIONS,
                  split_aliases={"test": "validation"}, tfds_slicing=True)
def load_imagenet143(split, data_dir, download, resolution):
  """ImageNet classes 151..293 (TFDS `imagenet2012` ids), relabelled 0..142.

  Images are centre-cropped to a square and resized to `resolution` (64, the default, or 128).
  JPEG decoding is skipped for the filtered-out classes.
  """
  resolution = resolution or 64
  errors.check(
      resolution in IMAGENET143_RESOLUTIONS,
      f"imagenet143 supports dataset.resolution in {IMAGENET143_RESOLUTIONS}, got {resolution}.")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  ds, _ = _tfds_load("imagenet2012", split, data_dir, download,
                     decoders={"image": tfds.decode.SkipDecoding()})

  def keep(ex):
    return (ex["label"] >= IMAGENET143_FIRST) & (ex["label"] <= IMAGENET143_LAST)

  def convert(ex):
    image = ex["image"]
    if image.dtype == tf.string:
      image = tf.io.decode_image(image, channels=3, expand_animations=False)
    image = transforms.crop_square_and_resize(transforms.to_unit_range(image), resolution)
    return image, tf.cast(ex["label"] - IMAGENET143_FIRST, tf.int32)

  ds = ds.filter(keep).map(convert, num_parallel_calls=AUTOTUNE)
  num_classes = IMAGENET143_LAST - IMAGENET143_FIRST + 1
  return sources.Source(ds, num_classes, (resolution, resolution, 3), "imagenet143")


def _small(tfds_name, split, data_dir, download, resolution, pad):
  ds, info = _tfds_load(tfds_name, split, data_dir, download)
  return _labelled(ds, info, tfds_name,
                   lambda x: transforms.pad_or_resize_28(transforms.to_unit_range(x), pad,
                                                         resolution))


@sources.register("mnist", splits=("train", "test"), options=_TFDS_OPTIONS + ("pad",),
                  tfds_slicing=True)
def load_mnist(split, data_dir, download, resolution, pad):
  """MNIST from TFDS: 28x28x1 padded with -1 to 32x32 (or resized with pad=False)."""
  return _small("mnist", split, data_dir, download, resolution, pad)


@sources.register("fashion_mnist", splits=("train", "test"), options=_TFDS_OPTIONS + ("pad",),
                  tfds_slicing=True)
def load_fashion_mnist(split, data_dir, download, resolution, pad):
  """Fashion-MNIST from TFDS: 28x28x1 padded with -1 to 32x32 (or resized with pad=False)."""
  return _small("fashion_mnist", split, data_dir, download, resolution, pad)
