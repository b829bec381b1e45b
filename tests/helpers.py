"""Shared test data: gin bindings that select each method on small models; dataset shapes."""

import gin

# One binding list per method, with small attack budgets; tests add their own model bindings.
METHOD_BINDINGS = {
    "as_gan": ["build_gan.method = 'as_gan'", "ASGAN.epsilon = 0.05"],
    "dat": ["build_gan.method = 'dat'", "DAT.epsilon = 0.05", "GAN.loss = 'wasserstein'"],
    "robgan": ["build_gan.method = 'robgan'", "build_discriminator.head = 'ac'",
               "RobGAN.epsilon = 0.05", "RobGAN.pgd_steps = 2", "RobGAN.pgd_step_size = 0.03"],
    "fast_robgan": ["build_gan.method = 'fast_robgan'", "build_discriminator.head = 'ac'",
                    "FastRobGAN.epsilon = 0.05", "FastRobGAN.batch_size = 8",
                    "GAN.loss = 'hinge'"],
}


# (shape, classes) of each dataset source, so that a config's networks can be built without data.
SHAPES = {"cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100),
          "celeb_a": ((64, 64, 3), 0), "lsun_bedroom": ((64, 64, 3), 0),
          "idx": ((32, 32, 1), 10), "fashion_mnist": ((32, 32, 1), 10), "mnist": ((32, 32, 1), 10),
          "ring": ((2,), 0), "grid": ((2,), 0)}


def shape_of(source):
  """(sample shape, classes) of a dataset source, under the parsed gin config."""
  if str(source).startswith("imagenet143"):
    return (gin.query_parameter("dataset.resolution"),) * 2 + (3,), 143
  return SHAPES[source]


def write_idx(path, array):
  """Writes `array` (uint8) as an IDX file (gzip-compressed when `path` ends in .gz)."""
  import gzip  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  array = np.asarray(array, np.uint8)
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  header += struct.pack(">" + "I" * array.ndim, *array.shape)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())
