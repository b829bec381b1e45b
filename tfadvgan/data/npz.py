"""The `npz` source: a numpy `.npz` file with `images` and optional `labels`."""
import numpy as np
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.data import filesystem
from tfadvgan.data import registry
from tfadvgan.data import sources


@registry.register("npz", splits=("train",), options=("path", "resolution"))
def load_npz(split, path, resolution):
  """A `.npz` file with `images` and optional `labels` (and optional scalar `num_classes`).

  `images` is `[N, H, W, C]` or `[N, H, W]`; uint8 arrays are read as 0..255, floating point
  arrays must already be in [-1, 1] (see `from_arrays`). The whole file is one "train" split.
  """
  del split
  path = filesystem.require_path(path, "npz", "an .npz file with an 'images' array")
  try:
    with tf.io.gfile.GFile(path, "rb") as f, np.load(f, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except Exception as e:  # pylint: disable=broad-except
    message = filesystem.first_line(getattr(e, "message", e)) or type(e).__name__
    raise errors.ConfigError(f"Cannot read {path!r} as an .npz file ({message}).") from None
  errors.check("images" in arrays,
               f"{path!r} has no 'images' array (found: {sorted(arrays)}); save it with "
               f"np.savez(path, images=..., labels=...).")
  images = arrays["images"]
  errors.check(images.ndim in (3, 4),
               f"{path!r}: 'images' must have shape [N, H, W, C] or [N, H, W], got "
               f"{images.shape}.")
  num_classes = int(arrays["num_classes"]) if "num_classes" in arrays else None
  return sources.from_arrays(images, arrays.get("labels"), name="npz", num_classes=num_classes,
                             resolution=resolution)
