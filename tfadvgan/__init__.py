"""tfadvgan: adversarially trained discriminators for stable GAN training (TensorFlow / Keras 3).

The public Python API (README, "Python API"):

  methods        GAN, ASGAN, DAT, RobGAN, FastRobGAN (keras.Model subclasses), METHODS
  networks       build_generator, build_discriminator
  training       fit (Keras-style, every tf.distribute strategy), build_gan and train (gin-driven)
  data           data.load, data.from_arrays, make_train_dataset, train_batches
  sampling       generate
  modules        losses, penalties, attacks, data, models, gans, optimizers
  errors         ConfigError (bad input, one line that says what to change)

The names are imported on first use, so `import tfadvgan` (and the scripts' `--help`) does not
import TensorFlow.
"""

import importlib

__version__ = "0.1.0"  # the one source of the version: setup.py reads it from here

# Public name -> the module that defines it.
_NAMES = {
    "GAN": "tfadvgan.gans",
    "ASGAN": "tfadvgan.gans",
    "DAT": "tfadvgan.gans",
    "RobGAN": "tfadvgan.gans",
    "FastRobGAN": "tfadvgan.gans",
    "METHODS": "tfadvgan.gans",
    "build_generator": "tfadvgan.models",
    "build_discriminator": "tfadvgan.models",
    "fit": "tfadvgan.training.fit",
    "build_gan": "tfadvgan.training.run",
    "train": "tfadvgan.training.run",
    "make_train_dataset": "tfadvgan.data",
    "train_batches": "tfadvgan.data",
    "generate": "tfadvgan.gans.sampling",
    "ConfigError": "tfadvgan.errors",
}
# Public submodules.
_MODULES = ("losses", "penalties", "attacks", "data", "models", "gans", "optimizers")

__all__ = ["__version__"] + sorted(_NAMES) + sorted(_MODULES)


def __getattr__(name):
  if name in _MODULES:
    value = importlib.import_module(f"tfadvgan.{name}")
  elif name in _NAMES:
    value = getattr(importlib.import_module(_NAMES[name]), name)
  else:
    raise AttributeError(f"module 'tfadvgan' has no attribute {name!r}")
  globals()[name] = value  # later look-ups skip this function
  return value


def __dir__():
  return __all__
