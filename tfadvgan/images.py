"""Image grids and PNG files (tf.io.encode_png; no imaging library needed), and the files of a set
of samples (`write_samples`: PNG grids and samples.npz)."""

import math

import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan import storage


def to_uint8(images):
  """[-1, 1] floats -> uint8 in [0, 255]."""
  images = np.nan_to_num(np.asarray(images, np.float32), nan=-1.0)
  return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images, columns=None, pad=2):
  """[N, H, W, C] in [-1, 1] -> one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image."""
  images = to_uint8(images)
  n, h, w, c = images.shape
  columns = columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / columns))
  out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
  for i in range(n):
    r, col = divmod(i, columns)
    out[pad + r * (h + pad):pad + r * (h + pad) + h,
        pad + col * (w + pad):pad + col * (w + pad) + w] = images[i]
  return out


def write_png(path, image_uint8):
  """Writes an [H, W, C] uint8 image atomically."""
  data = tf.io.encode_png(tf.convert_to_tensor(image_uint8)).numpy()
  storage.atomic_write(path, data)


def write_samples(out_dir, samples, labels=None, per_grid=64):
  """Writes `samples.npz` (`images`, and `labels` when given) and, for images, PNG grids of
  `per_grid` samples (`grid_000.png`, ...) to `out_dir` (any tf.io.gfile path).

  Returns:
    (npz path, [PNG paths]).
  """
  errors.check(per_grid >= 1, f"--per_grid must be >= 1; got {per_grid}.")
  storage.makedirs(out_dir)
  written = []
  if samples.ndim == 4:
    for j, i in enumerate(range(0, len(samples), per_grid)):
      path = storage.join(out_dir, f"grid_{j:03d}.png")
      write_png(path, grid(samples[i:i + per_grid]))
      written.append(path)
  arrays = {"images": samples} if labels is None else {"images": samples, "labels": labels}
  npz = storage.join(out_dir, "samples.npz")
  storage.save_npz(npz, **arrays)
  return npz, written
