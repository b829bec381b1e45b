"""Input gradients of a discriminator: their statistics and histogram (AS-GAN Fig. 9) and their
maps (AS-GAN Fig. 2).

Readings and decisions (also in docs/evaluation.md, "Evaluation: decisions"): the gradients are of
the raw logit ``D(x)`` (not sigmoid(D) or the loss, whose scale depends on the confidence), per
example (inference mode: examples are independent). L1 = sum over all input entries of
``|grad|``, averaged over examples; sparsity = fraction of entries with ``|grad| <= zero_tol``; the
histogram range is ``[-m, m]`` with ``m = max |grad|`` unless ``hist_range`` is given. The grid
(Fig. 2) clips each image's gradient to its mean +- 3 std, takes the absolute value averaged over
channels, and scales each map by its maximum (white = largest).
"""
import gin
import numpy as np

from tfadvgan import errors
from tfadvgan import images as images_lib
from tfadvgan import tensor_ops
from tfadvgan.metrics.diagnostics import batching


def input_gradients(d_fn, images, labels=None, batch_size=256):
  """``[N, ...]`` numpy gradients of the logit ``D(x)`` w.r.t. each input (batched, compiled)."""
  return batching.map_batches(
      d_fn, images, labels, batch_size,
      lambda xb, yb: {"g": tensor_ops.input_gradient(batching.logit_fn(d_fn, yb), xb)[1]},
      key=("input_gradients",))["g"]


@gin.configurable(denylist=["d_fn", "images", "labels"])
def input_gradient_stats(d_fn, images, labels=None, zero_tol=1e-6, bins=50, hist_range=None,
                         batch_size=256):
  """AS-GAN Fig. 9: L1 norm, sparsity and histogram of ``grad_x D(x)`` on (real) images.

  Args:
    d_fn: ``d_fn(x, labels) -> {"logits": [B]}``.
    images: ``[N, ...]`` inputs.
    labels: optional ``[N]`` labels for ``d_fn``.
    zero_tol: entries with ``|grad| <= zero_tol`` count as zero.
    bins: histogram bins.
    hist_range: ``(lo, hi)``; None means ``[-max|grad|, max|grad|]``.
    batch_size: batch size.

  Returns:
    dict: ``l1`` (mean over examples of the per-example L1 norm), ``l1_std``, ``l2`` (mean
    per-example L2 norm), ``sparsity`` (fraction of near-zero entries), ``histogram``:
    ``{"counts": [bins] int64, "edges": [bins + 1] float64}``.
  """
  errors.check(isinstance(bins, int) and bins >= 1, f"bins must be an int >= 1; got {bins!r}.")
  g = input_gradients(d_fn, images, labels, batch_size)
  flat = g.reshape(g.shape[0], -1).astype(np.float64)
  l1 = np.sum(np.abs(flat), axis=1)
  if hist_range is None:
    m = float(np.max(np.abs(flat))) if flat.size else 0.0
    hist_range = (-m, m) if m > 0 else (-1.0, 1.0)
  counts, edges = np.histogram(flat, bins=bins, range=tuple(float(r) for r in hist_range))
  return {"l1": float(np.mean(l1)), "l1_std": float(np.std(l1)),
          "l2": float(np.mean(np.sqrt(np.sum(flat * flat, axis=1)))),
          "sparsity": float(np.mean(np.abs(flat) <= zero_tol)),
          "histogram": {"counts": counts, "edges": edges}}


def gradient_maps(gradients):
  """``[N, H, W, C]`` gradients -> ``[N, H, W]`` maps in [0, 1] as in AS-GAN Fig. 2.

  Each image's gradient is clipped to its mean +- 3 std, then ``|.|`` is averaged over channels
  and the map is divided by its maximum (all-zero maps stay zero).
  """
  g = np.asarray(gradients, np.float64)
  errors.check(g.ndim == 4, f"gradient maps need [N, H, W, C] image gradients; got {g.shape}.")
  axes = (1, 2, 3)
  mean = g.mean(axis=axes, keepdims=True)
  std = g.std(axis=axes, keepdims=True)
  g = np.clip(g, mean - 3 * std, mean + 3 * std)
  maps = np.abs(g).mean(axis=-1)
  peak = maps.max(axis=(1, 2), keepdims=True)
  return np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), 0.0)


def gradient_grid(d_fn, images, labels=None, columns=None, batch_size=256):
  """AS-GAN Fig. 2: a uint8 grid ``[rows*(H+2)+2, cols*(W+2)+2, 1]`` of ``|grad_x D|`` maps.

  Same layout as ``tfadvgan.images.grid`` (so it lines up with a grid of the inputs).
  """
  x = batching.check_images(images)
  errors.check(x.ndim == 4, f"gradient_grid needs [N, H, W, C] images; got shape {x.shape}.")
  maps = gradient_maps(input_gradients(d_fn, x, labels, batch_size))
  return images_lib.grid((2.0 * maps - 1.0)[..., None].astype(np.float32), columns=columns)


def histogram_image(counts, height=100, bar_width=4, log=True):
  """A simple uint8 ``[height, bins * (bar_width + 1) + 1, 1]`` bar plot (black bars on white).

  Bar heights are ``log1p(count)`` (``log=True``) or counts, scaled to the tallest bar.
  """
  c = np.asarray(counts, np.float64)
  c = np.log1p(c) if log else c
  peak = c.max() if c.size and c.max() > 0 else 1.0
  heights = np.rint(c / peak * height).astype(int)
  img = np.full((height, len(c) * (bar_width + 1) + 1, 1), 255, np.uint8)
  img[-1, :] = 128  # grey baseline under empty bins
  for i, h in enumerate(heights):
    if h > 0:
      left = 1 + i * (bar_width + 1)
      img[height - h:, left:left + bar_width] = 0
  return img
