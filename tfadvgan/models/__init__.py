"""Generator and discriminator architectures (DCGAN, ResNet, MLP) and their builders.

Public API: ``build_generator``, ``build_discriminator`` and the registries ``GENERATORS``,
``DISCRIMINATORS``, ``RESOLUTIONS``, ``HEADS``. See ``layers`` for the spectral-norm behaviour and
for saving (every network saves as ``.keras``; importing this package registers the classes), and
``export`` for a generator's SavedModel.
"""
from tfadvgan.models import export
from tfadvgan.models import layers
from tfadvgan.models.base import MIXED_PRECISION
from tfadvgan.models.base import Discriminator
from tfadvgan.models.base import Generator
from tfadvgan.models.base import check_mixed_precision
from tfadvgan.models.base import dtype_policy
from tfadvgan.models.builders import CHANNELS
from tfadvgan.models.builders import DISCRIMINATORS
from tfadvgan.models.builders import GENERATORS
from tfadvgan.models.builders import HEADS
from tfadvgan.models.builders import RESOLUTIONS
from tfadvgan.models.builders import build_discriminator
from tfadvgan.models.builders import build_generator
from tfadvgan.models.builders import check_shape
from tfadvgan.models.layers import ConditionalBatchNorm

__all__ = [
    "build_generator", "build_discriminator", "GENERATORS", "DISCRIMINATORS", "RESOLUTIONS",
    "HEADS", "CHANNELS", "check_shape", "Generator", "Discriminator", "ConditionalBatchNorm",
    "layers", "export", "MIXED_PRECISION", "check_mixed_precision", "dtype_policy",
]
