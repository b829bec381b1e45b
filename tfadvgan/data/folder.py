"""The `folder` source: a directory of images, optionally one subfolder per class.

Files are listed and read through `tf.io.gfile` (one listing per directory, which matters on GCS).
Each input pipeline reads and decodes only its share of the files. Every image is checked to
decode before training starts (`check_folder`), so a corrupt file is reported by name.
"""
import hashlib
import json
import os

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import storage
from tfadvgan.data import filesystem
from tfadvgan.data import registry
from tfadvgan.data import sources
from tfadvgan.data import transforms

AUTOTUNE = tf.data.AUTOTUNE

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def _is_image(name):
  return name.lower().endswith(IMAGE_EXTENSIONS)


def list_image_folder(path):
  """Lists a folder of images (through tf.io.gfile).

  Entries with an image extension are taken as images without a per-file stat (one listing per
  directory, which matters on GCS); the other entries that are directories are class subfolders.

  Returns:
    `(files, labels or None, class_names)`: with class subfolders, labels index the sorted
    subfolder names; subfolders without images are ignored.
  """
  entries = filesystem.listdir(path)
  top = [os.path.join(path, n) for n in entries if _is_image(n)]
  class_names, files, labels = [], [], []
  for name in entries:
    sub = os.path.join(path, name)
    if _is_image(name) or not filesystem.isdir(sub):
      continue
    images = [os.path.join(sub, n) for n in filesystem.listdir(sub) if _is_image(n)]
    if images:
      files.extend(images)
      labels.extend([len(class_names)] * len(images))
      class_names.append(name)
  if not class_names:
    return top, None, []
  errors.check(
      not top,
      f"{path!r} has both images at the top level and class subfolders; move the top-level "
      f"images into a subfolder (or remove the subfolders) so labels are unambiguous.")
  return files, np.asarray(labels, np.int32), class_names


def _decode(filename, channels=0):
  """The one image decoder of the folder source (validation and training use the same op)."""
  return tf.io.decode_image(tf.io.read_file(filename), channels=channels,
                            expand_animations=False)


def _decode_error(filename, channels):
  """The decoder's one-line message for `filename` (which failed to decode in tf.data)."""
  try:
    _decode(filename, channels)
  except tf.errors.OpError as e:
    return filesystem.first_line(e.message)
  return "it failed to read or decode"


def check_images_decode(files, channels):
  """Decodes every image of `files` once, in parallel through tf.data.

  A file that does not decode would otherwise stop training with a tf.data error that names no
  file, at whatever step first reaches it. The cost is one read and decode of the files (about
  what one epoch of the input pipeline costs; measured figures are in
  docs/reliability.md, "Folder sources").

  Raises:
    ConfigError: naming the first file (in listing order) that does not read or decode, and how
      many others fail.
  """
  if not files:
    return
  ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
  ds = ds.map(lambda i, f: (i, tf.shape(_decode(f, channels))), num_parallel_calls=AUTOTUNE,
              deterministic=False)
  ds = ds.ignore_errors().map(lambda i, _: i).batch(4096)
  ok = np.zeros([len(files)], bool)
  for index in ds.as_numpy_iterator():
    ok[index] = True
  bad = np.flatnonzero(~ok)
  if bad.size:
    first = files[bad[0]]
    others = (f"; {bad.size - 1} more of the {len(files)} images fail too (next: "
              f"{files[bad[1]]!r})" if bad.size > 1 else "")
    raise errors.ConfigError(
        f"Image {first!r} cannot be decoded ({_decode_error(first, channels)}){others}; remove "
        "or replace the bad file(s) in dataset.path.")


def _stat_key(path):
  """(size, mtime in ns) of a file, through tf.io.gfile: what the manifest compares."""
  stat = filesystem.gfile_call(tf.io.gfile.stat, path)
  return [int(stat.length), int(stat.mtime_nsec)]


def _manifest_path(path, channels):
  key = hashlib.sha1(f"{storage.abspath(path)}|{channels}".encode()).hexdigest()[:16]
  return storage.join(storage.cache_dir("folders"), f"{key}.json")


@gin.configurable("folder_check")
def check_folder(path, files, channels, mode="changed"):
  """The folder source's decode check, paid once per dataset rather than once per start.

  Args:
    path: the folder (`dataset.path`).
    files: its image files.
    channels: decoded channels.
    mode: 'changed' (default) decodes only the files that are new or whose size or mtime
      changed since the last check passed, as recorded in a manifest under
      `$TFADVGAN_CACHE_DIR/folders` (default `~/.cache/tfadvgan/folders`); 'all' decodes every
      file at every start; 'off' decodes none (a bad file then stops training at the step that
      reaches it, with TensorFlow's message).

  Returns:
    The number of files decoded.
  """
  errors.check(mode in ("changed", "all", "off"),
               f"folder_check.mode must be 'changed', 'all' or 'off'; got {mode!r}.")
  if mode == "off":
    return 0
  if mode == "all":
    check_images_decode(files, channels)
    return len(files)
  manifest_path = _manifest_path(path, channels)
  try:
    known = json.loads(storage.read(manifest_path)) if storage.exists(manifest_path) else {}
  except (ValueError, errors.ConfigError):
    logging.warning("Ignoring the unreadable folder manifest %s; checking every image again.",
                    manifest_path)
    known = {}
  keys = {f: _stat_key(f) for f in files}
  todo = [f for f in files if known.get(f) != keys[f]]
  check_images_decode(todo, channels)
  if todo:
    try:
      storage.atomic_write(manifest_path, json.dumps(keys))
    except errors.ConfigError as e:  # a read-only home: the check still ran
      logging.warning("Could not record the checked images (%s); the next start checks them "
                      "again.", e)
  return len(todo)


def _folder_decoder(channels, resolution, height, width):
  """The folder source's `decode`: file name -> uint8 image `[height, width, channels]`."""

  def decode(filename):
    image = _decode(filename, channels)
    if resolution:
      image = transforms.crop_square_and_resize(transforms.to_unit_range(image), resolution)
      image = transforms.to_uint8(image)
    else:
      size = tf.shape(image)[:2]
      image = tf.cond(
          tf.reduce_all(size == [height, width]), lambda: image,
          lambda: transforms.to_uint8(
              transforms.resize(transforms.to_unit_range(image), height, width)))
    return tf.ensure_shape(image, [height, width, channels])

  return decode


def _file_records(files, labels=None):
  """`Source.records` over a list of files: file i goes to shard i mod P; with a seed, each
  shard's file order is shuffled every epoch."""

  def records(num_shards, index, seed):
    names = files[index::num_shards]
    ds = tf.data.Dataset.from_tensor_slices(
        names if labels is None else (names, labels[index::num_shards]))
    if seed is not None:
      ds = ds.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    return ds

  return records


@registry.register("folder", splits=("train",), options=("path", "resolution"))
def load_folder(split, path, resolution):
  """A folder of png/jpg/bmp images, optionally with one subfolder per class.

  Labels follow the sorted subfolder names. Channels follow the first image (RGBA -> RGB,
  grey+alpha -> grey). With `resolution`, every image is centre-cropped to a square and resized
  to `resolution` x `resolution`; without it every image is resized to the first image's size
  (resized images are rounded to 8 bits, as a file of that size would be). Each input pipeline
  reads and decodes only its share of the files. Every image is checked to decode before training
  starts (`check_folder`: once per dataset, then only files that changed), so a corrupt file is
  reported by name.
  """
  del split
  path = filesystem.require_path(path, "folder",
                                 "a directory of images (optionally class subfolders)")
  errors.check(filesystem.isdir(path), f"dataset.path {path!r} must be a directory of images.")
  files, labels, _ = list_image_folder(path)
  errors.check(files, f"No {'/'.join(IMAGE_EXTENSIONS)} images found in {path!r} or its "
               f"subfolders; check dataset.path.")
  try:
    first = _decode(files[0])
  except tf.errors.OpError as e:
    raise errors.ConfigError(
        f"Image {files[0]!r} cannot be decoded ({filesystem.first_line(e.message)}); remove or "
        "replace it in dataset.path.") from None
  channels = {1: 1, 2: 1, 3: 3, 4: 3}[int(first.shape[-1])]
  check_folder(path, files, channels)
  height, width = (resolution, resolution) if resolution else tuple(first.shape[:2])
  num_classes = 0 if labels is None else int(labels.max()) + 1
  return sources.Source(
      _file_records(files, labels), num_classes, (height, width, channels), "folder",
      decode=_folder_decoder(channels, resolution, height, width),
      finish=transforms.to_unit_range, num_examples=len(files), max_examples=len(files),
      file_shards=len(files))
