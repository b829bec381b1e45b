"""Trainable G / D parameter counts of the configs at full width.

The figures: docs/results/parameter_counts.md, "Parameter counts of the configs".

One config stands for each group of configs with the same networks. The 64 px ResNet configs stay
in the quick suite: `common/resnet.gin` used to force width 128 at every image size, which made them
43.7M / 78.2M parameters (`base/resnet_lsun64.gin` is the quick one; the AS-GAN ones now use the
release's same-width nets, whose 32 px pair is built by the init test below). The others build up to 20M parameters and run with `-m slow`.
"""

import os

import gin
import helpers
import numpy as np
import pytest

from tfadvgan import models
from tfadvgan.cli import common
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Counted 2026-12-01 by building every config at its dataset's shape; one config per distinct (G, D)
# pair. The AS-GAN Table 1 nets follow the release: its same-width ResNets (whose counts, read
# off the release code, are 4,155,907 / 4,336,385 at 32 px and 5,402,883 / 5,582,337 at 64 px),
# BN after the SN-DCGAN convs.
COUNTS = {
    "gin_configs/as_gan/ablation_eps0.2_dcgan_cifar10.gin": (3448576, 2637313),
    "gin_configs/as_gan/as_dcgan_celeba64.gin": (12658432, 11036161),
    "gin_configs/as_gan/as_dcgan_fmnist.gin": (369600, 166785),
    "gin_configs/as_gan/as_resnet_celeba64.gin": (5402883, 5582337),
    "gin_configs/as_gan/as_resnet_cifar10.gin": (4155907, 4336385),
    "gin_configs/as_gan/as_sn_dcgan_celeba64.gin": (12658432, 11036161),
    "gin_configs/as_gan/as_sn_dcgan_cifar10.gin": (3448576, 2637313),
    "gin_configs/as_gan/as_sn_resnet_celeba64.gin": (5402883, 5582337),
    "gin_configs/as_gan/as_sn_resnet_cifar10.gin": (4155907, 4336385),
    "gin_configs/base/dcgan_celeba64.gin": (3576704, 2765569),
    "gin_configs/base/dcgan_cifar10.gin": (1068928, 663297),
    "gin_configs/base/dcgan_gp_cifar10.gin": (1068928, 662529),
    "gin_configs/base/gan_grid.gin": (223746, 198401),
    "gin_configs/base/resnet_lsun64.gin": (11761923, 19548481),
    "gin_configs/base/sn_dcgan_celeba64.gin": (3576704, 2763777),
    "gin_configs/base/wgan_gp_fmnist.gin": (369600, 166401),
    "gin_configs/fast_robgan/fast_robgan_cifar10.gin": (1218307, 1055115),
    "gin_configs/fast_robgan/fast_robgan_cifar100.gin": (1356547, 1066725),
    "gin_configs/fast_robgan/fast_robgan_fmnist.gin": (373632, 187275),
    "gin_configs/fast_robgan/fast_robgan_imagenet143_128.gin": (10606339, 10898000),
    "gin_configs/fast_robgan/fast_robgan_imagenet143_64.gin": (13038595, 19689296),
    "gin_configs/robgan/robgan_acgan_loss_cifar10.gin": (1218307, 1056651),
    "gin_configs/robgan/robgan_acgan_loss_cifar100.gin": (1356547, 1068261),
    "gin_configs/robgan/sngan_ac_fmnist.gin": (373632, 186891),
    "gin_configs/robgan/sngan_projection_cifar10.gin": (1218307, 1055105),
    "gin_configs/robgan/sngan_projection_cifar100.gin": (1356547, 1066625),
    "gin_configs/robgan/sngan_projection_imagenet143_128.gin": (10606339, 10897857),
    "gin_configs/robgan/sngan_projection_imagenet143_64.gin": (13038595, 19689153),
}
QUICK = ("gin_configs/base/resnet_lsun64.gin",  # the SNGAN-plan 64 px ResNet
         "gin_configs/as_gan/ablation_eps0.2_dcgan_cifar10.gin")  # the release's DCGAN_32 width


def _trainable(model):
  return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("config", [c if c in QUICK else pytest.param(c, marks=pytest.mark.slow)
                                    for c in sorted(COUNTS)])
def test_parameter_counts_of_the_configs(config):
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, config)], [])
  shape, classes = helpers.shape_of(gin.query_parameter("dataset.source"))
  gan = loop.build_gan(shape, classes)
  assert (_trainable(gan.generator), _trainable(gan.discriminator)) == COUNTS[config]


def test_dcgan32_discriminator_count_is_the_closed_form():
  """An independent count: DCGAN-32 D at width c on RGB, 4x4 convs without bias, BN (gamma, beta)
  after the 2nd and 3rd conv, a dense head on the 4x4x4c map."""
  c = 64
  want = 4 * 4 * (3 * c + c * 2 * c + 2 * c * 4 * c) + 2 * (2 * c + 4 * c) + (4 * 4 * 4 * c + 1)
  d = models.build_discriminator("dcgan", (32, 32, 3), width=c)
  assert _trainable(d) == want == COUNTS["gin_configs/base/dcgan_cifar10.gin"][1]


def test_same_width_resnet_discriminator_init_is_xavier_with_gain_sqrt2():
  """The release's D blocks start their residual convs from xavier_uniform_(w, sqrt(2)): a uniform
  bound of sqrt(2) * sqrt(6 / (fan_in + fan_out)); G's output conv is 1x1."""
  d = models.build_discriminator(arch="resnet", input_shape=(32, 32, 3), plan="same",
                                 batch_norm=False)
  kernel = d.blocks[1].conv1.kernel.numpy()
  bound = np.sqrt(2.0) * np.sqrt(6.0 / (2 * 3 * 3 * 256))
  assert kernel.shape == (3, 3, 256, 256)
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound
  assert np.std(kernel) == pytest.approx(bound / np.sqrt(3.0), rel=0.01)  # uniform's std
  skip = d.blocks[1].skip.kernel.numpy()  # gain 1, as the release's c_sc
  assert 0.99 * np.sqrt(6.0 / (2 * 256)) < np.abs(skip).max() <= np.sqrt(6.0 / (2 * 256))
  g = models.build_generator(arch="resnet", output_shape=(32, 32, 3), plan="same")
  assert g.to_image.kernel.shape == (1, 1, 256, 3)
