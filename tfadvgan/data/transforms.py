"""Per-image transforms shared by the data sources.

All functions take and return single images (HWC tensors); the float images they return are
float32 in [-1, 1].
"""
import tensorflow as tf


def to_unit_range(image):
  """Maps a uint8 image in [0, 255] (or its float32 cast) to float32 in [-1, 1]."""
  return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image):
  """Maps a float32 image in [-1, 1] to uint8 in [0, 255], rounding to the nearest level (the
  inverse of `to_unit_range` on 8-bit values)."""
  return tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def resize(image, height, width=None):
  """Resizes a float image to `height` x `width` (bilinear, antialiased), clipped to [-1, 1].

  Args:
    image: float32 `[H, W, C]` image in [-1, 1], or a batch `[N, H, W, C]` of them.
    height: Output height.
    width: Output width; defaults to `height`.

  Returns:
    float32 `[height, width, C]` image (`[N, height, width, C]`) with a static shape.
  """
  width = height if width is None else width
  image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
  return tf.clip_by_value(image, -1.0, 1.0)


def maybe_resize(image, resolution):
  """Resizes to `resolution` x `resolution` unless the static shape already matches (an image
  `[H, W, C]` or a batch `[N, H, W, C]`)."""
  if resolution is None:
    return image
  if image.shape[-3] == resolution and image.shape[-2] == resolution:
    return image
  return resize(image, resolution)


def center_crop(image, height, width=None):
  """Crops the central `height` x `width` window (the image must be at least that large)."""
  width = height if width is None else width
  shape = tf.shape(image)
  top = (shape[0] - height) // 2
  left = (shape[1] - width) // 2
  image = image[top:top + height, left:left + width]
  return tf.ensure_shape(image, [height, width, image.shape[-1]])


def center_crop_square(image):
  """Crops the largest central square (dynamic size) out of an image."""
  shape = tf.shape(image)
  side = tf.minimum(shape[0], shape[1])
  top = (shape[0] - side) // 2
  left = (shape[1] - side) // 2
  return image[top:top + side, left:left + side]


def crop_square_and_resize(image, resolution):
  """Central square crop followed by an antialiased resize to `resolution` x `resolution`."""
  return resize(center_crop_square(image), resolution)


def resize_shorter_and_crop(image, resolution):
  """Resizes so the shorter side is `resolution`, then crops the central square.

  Equivalent to `crop_square_and_resize` up to the antialiasing window at the borders; it is
  the usual LSUN preprocessing.
  """
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = float(resolution) / tf.minimum(shape[0], shape[1])
  new_size = tf.maximum(tf.cast(tf.math.round(shape * scale), tf.int32), resolution)
  image = tf.image.resize(image, new_size, method="bilinear", antialias=True)
  image = center_crop(image, resolution)
  return tf.clip_by_value(image, -1.0, 1.0)


def pad_to(image, size, value=-1.0):
  """Pads a square image `[H, W, C]` (or a batch `[N, H, W, C]`) symmetrically to `size` x `size`
  with `value` (-1 is black)."""
  pad_h = size - image.shape[-3]
  pad_w = size - image.shape[-2]
  if pad_h < 0 or pad_w < 0:
    raise ValueError(f"Cannot pad a {image.shape[-3]}x{image.shape[-2]} image to {size}x{size}.")
  paddings = [[0, 0]] * (len(image.shape) - 3) + [
      [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]]
  return tf.pad(image, paddings, constant_values=value)


def pad_or_resize_28(image, pad=True, resolution=None):
  """Standard handling of 28x28 digit images (MNIST, Fashion-MNIST).

  Args:
    image: float32 `[28, 28, C]` image in [-1, 1].
    pad: Pad 2 px of -1 on each side to 32x32 (True) or resize to 32x32 (False).
    resolution: Optional final side length; with `pad=False` the image is resized straight to
      it (so `pad=False, resolution=28` keeps the original pixels).

  Returns:
    float32 image with a static shape.
  """
  if pad:
    return maybe_resize(pad_to(image, 32), resolution)
  return maybe_resize(image, resolution or 32)
