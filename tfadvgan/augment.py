"""DiffAugment: differentiable colour, translation and cutout (Zhao et al., Differentiable
Augmentation for Data-Efficient GAN Training, NeurIPS 2020; the authors' code,
mit-han-lab/data-efficient-gans, `DiffAugment_tf.py`).

`diff_augment(x, policy, seed)` applies, per example and in the policy's order:
- `color`: brightness x + (u - 0.5); saturation (x - m_c) * 2u + m_c, m_c the mean over channels
  (the identity on 1-channel images, as in the official code, which applies it all the same);
  contrast (x - m) * (u + 0.5) + m, m the example's mean over all pixels and channels;
- `translation`: shifts by integers in [-W // 8, W // 8] (columns) and [-H // 8, H // 8] (rows),
  filling with 0 (mid-grey on the [-1, 1] scale): out[i, j] = x[i + s_h, j + s_w];
- `cutout`: zeroes a (H // 2) x (W // 2) box whose centre is uniform over the image (the box is cut
  at the border), the official code's offsets and sizes.
Each op is a function of x with the random numbers given (`brightness`, `translate`, `cutout`, ...),
so the closed forms are testable; every op is differentiable in x (gathers and masks).

Randomness is stateless: one draw for the *global* batch from a seed shared by all replicas, of
which each replica takes its own rows (`replica_id`, `num_replicas`), so that example i gets the
same augmentation on 1 or N replicas. The numbers come from `tfadvgan.rng` (identical with and
without XLA); shapes are static.
"""

import tensorflow as tf

from tfadvgan import errors
from tfadvgan import rng

POLICIES = ("color", "translation", "cutout")
_OPS = ("brightness", "saturation", "contrast", "translation", "cutout")  # one child seed each


def parse_policy(policy, name="GAN.diffaugment"):
  """`'color,translation,cutout'` (or a list of those names) -> a tuple of names; None or '' -> ().
  An unknown or repeated name is one ConfigError naming `name`."""
  if policy is None:
    return ()
  parts = policy.split(",") if isinstance(policy, str) else list(policy)
  parts = [str(p).strip() for p in parts if str(p).strip()]
  for part in parts:
    errors.check(part in POLICIES, f"Unknown {name} entry {part!r}: give a comma-separated subset "
                 f"of {', '.join(POLICIES)} (e.g. 'color,translation,cutout'), or None.")
  errors.check(len(set(parts)) == len(parts), f"{name} = {policy!r} names an entry twice.")
  return tuple(parts)


def _per_example(u, x):
  return tf.reshape(tf.cast(u, x.dtype), [-1, 1, 1, 1])


def brightness(x, u):
  """x + (u - 0.5), u [B] in [0, 1)."""
  return x + _per_example(u, x) - tf.cast(0.5, x.dtype)


def saturation(x, u):
  """(x - mean over channels) * 2u + that mean."""
  mean = tf.reduce_mean(x, axis=3, keepdims=True)
  return (x - mean) * (_per_example(u, x) * 2) + mean


def contrast(x, u):
  """(x - the example's mean) * (u + 0.5) + that mean."""
  mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
  return (x - mean) * (_per_example(u, x) + tf.cast(0.5, x.dtype)) + mean


def _shift(x, shift, axis):
  """out[..., i, ...] = x[..., i + shift[b], ...] along `axis` (1 or 2), 0 outside the image."""
  size = int(x.shape[axis])
  pad = [[0, 0]] * 4
  pad[axis] = [1, 1]
  index = tf.clip_by_value(tf.range(size)[None] + shift[:, None] + 1, 0, size + 1)  # [B, size]
  return tf.gather(tf.pad(x, pad), index, axis=axis, batch_dims=1)


def translate(x, shift_h, shift_w):
  """out[b, i, j] = x[b, i + shift_h[b], j + shift_w[b]], 0 where that lies outside the image."""
  return _shift(_shift(x, tf.cast(shift_w, tf.int32), 2), tf.cast(shift_h, tf.int32), 1)


def cutout(x, top, left, size_h, size_w):
  """x with rows [top, top + size_h) x columns [left, left + size_w) of each example set to 0
  (`top`, `left` [B] may be negative or run past the border: the box is cut there)."""
  top, left = tf.cast(top, tf.int32)[:, None], tf.cast(left, tf.int32)[:, None]
  rows = tf.range(int(x.shape[1]))[None]
  cols = tf.range(int(x.shape[2]))[None]
  in_rows = tf.logical_and(rows >= top, rows < top + size_h)  # [B, H]
  in_cols = tf.logical_and(cols >= left, cols < left + size_w)  # [B, W]
  inside = tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])
  return x * tf.cast(tf.logical_not(inside), x.dtype)[..., None]


def _integers(u, low, high):
  """Integers uniform in [low, high] from u in [0, 1)."""
  count = high - low + 1
  return low + tf.minimum(tf.cast(tf.floor(u * count), tf.int32), count - 1)


def _draw(seeds, op, rows, num):
  """[num, B_local] uniforms for `op`: this replica's rows of one draw for the global batch."""
  offset, local, total = rows
  u = rng.uniform([num, total], seeds[_OPS.index(op)])
  return tf.gather(u, offset + tf.range(local), axis=1)


def diff_augment(x, policy, seed, replica_id=0, num_replicas=1):
  """DiffAugment of an image batch x [B, H, W, C] (B = this replica's rows).

  Args:
    x: images on the [-1, 1] scale.
    policy: names from `POLICIES` (a string or sequence, `parse_policy`); empty: x unchanged.
    seed: [2] int32 stateless seed, the same on every replica.
    replica_id: this replica's index (int or scalar tensor); it takes rows [id * B, (id + 1) * B)
      of the global draw.
    num_replicas: replicas in sync (a Python int).

  Returns:
    The augmented batch, differentiable in x.
  """
  policy = parse_policy(policy)
  if not policy:
    return x
  errors.check(x.shape.rank == 4 and None not in x.shape[1:],
               f"DiffAugment augments image batches [B, H, W, C]; got shape {x.shape}: unset "
               "GAN.diffaugment for non-image data.")
  local = int(x.shape[0]) if x.shape[0] is not None else tf.shape(x)[0]
  rows = (tf.cast(replica_id, tf.int32) * local, local, local * int(num_replicas))
  seeds = rng.split_seed(seed, len(_OPS))
  height, width = int(x.shape[1]), int(x.shape[2])
  for name in policy:
    if name == "color":
      x = brightness(x, _draw(seeds, "brightness", rows, 1)[0])
      x = saturation(x, _draw(seeds, "saturation", rows, 1)[0])
      x = contrast(x, _draw(seeds, "contrast", rows, 1)[0])
    elif name == "translation":
      u = _draw(seeds, "translation", rows, 2)
      x = translate(x, _integers(u[0], -(height // 8), height // 8),
                    _integers(u[1], -(width // 8), width // 8))
    else:
      u = _draw(seeds, "cutout", rows, 2)
      size_h, size_w = height // 2, width // 2
      # The official offsets: a centre in [0, H + 1 - size_h % 2), the box from centre - size // 2.
      top = _integers(u[0], 0, height - size_h % 2) - size_h // 2
      left = _integers(u[1], 0, width - size_w % 2) - size_w // 2
      x = cutout(x, top, left, size_h, size_w)
  return x
