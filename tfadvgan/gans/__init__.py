"""GAN methods: the shared `GAN` model and one small subclass per method.

The registry is written out here rather than filled by decorators in the method modules, so that
no method imports this package (that was an import cycle).
"""

from tfadvgan import errors
from tfadvgan.gans.as_gan import ASGAN
from tfadvgan.gans.base import GAN
from tfadvgan.gans.dat import DAT
from tfadvgan.gans.fast_robgan import FastRobGAN
from tfadvgan.gans.robgan import RobGAN

METHODS = {cls.method_name: cls for cls in (GAN, ASGAN, DAT, RobGAN, FastRobGAN)}


def get(name):
  """Returns the GAN class registered as `name` (gan, as_gan, dat, robgan, fast_robgan)."""
  return errors.choose("method", name, METHODS)
