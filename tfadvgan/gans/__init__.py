"""GAN methods: the shared `GAN` model and one small subclass per method."""

from tfadvgan import errors
from tfadvgan.gans.base import GAN

METHODS = {"gan": GAN}


def register(name):
  def wrap(cls):
    METHODS[name] = cls
    return cls
  return wrap


def get(name):
  """Returns the GAN class registered as `name` (gan, ...)."""
  return errors.choose("method", name, METHODS)


# Importing a method module registers it.
from tfadvgan.gans import as_gan  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from tfadvgan.gans import dat  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from tfadvgan.gans import robgan  # noqa: E402,F401  pylint: disable=g-import-not-at-top
from tfadvgan.gans import fast_robgan  # noqa: E402,F401  pylint: disable=g-import-not-at-top
