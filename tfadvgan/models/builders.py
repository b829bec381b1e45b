"""``build_generator`` / ``build_discriminator``: validate the configuration, build, create weights.

Sample shapes come from the caller (the dataset); everything else from gin. Both builders call the
model once on zeros (``create_weights``, ``training=False``) so its weights exist before it is
handed to an optimiser, a checkpoint or a distribution strategy (build under ``strategy.scope()``
to get mirrored variables). Spectral-norm layers are *not* normalised by that call; see ``layers``.
"""
import gin

from tfadvgan import errors
from tfadvgan.models import dcgan
from tfadvgan.models import layers
from tfadvgan.models import mlp
from tfadvgan.models import resnet

GENERATORS = {
    "dcgan": dcgan.DCGANGenerator,
    "resnet": resnet.ResNetGenerator,
    "mlp": mlp.MLPGenerator,
}
DISCRIMINATORS = {
    "dcgan": dcgan.DCGANDiscriminator,
    "resnet": resnet.ResNetDiscriminator,
    "mlp": mlp.MLPDiscriminator,
}
# Square image resolutions per image architecture; None marks flat-vector architectures.
RESOLUTIONS = {"dcgan": dcgan.RESOLUTIONS, "resnet": resnet.RESOLUTIONS, "mlp": None}
CHANNELS = (1, 3)
HEADS = {name: name for name in layers.HEADS}


def check_shape(arch, shape):
  """Raises ConfigError unless ``arch`` supports samples of ``shape``; returns it as a tuple."""
  try:
    shape = tuple(int(d) for d in shape)
  except (TypeError, ValueError):
    raise errors.ConfigError(f"Sample shape must be a tuple of ints; got {shape!r}.") from None
  resolutions = RESOLUTIONS[arch]
  if resolutions is None:
    errors.check(len(shape) == 1 and shape[0] > 0,
                 f"{arch} supports flat shapes (D,), e.g. (2,) for the 2-D toy data; got {shape}. "
                 f"Use arch='dcgan' or 'resnet' for images.")
    return shape
  res_list = ", ".join(str(r) for r in resolutions)
  errors.check(len(shape) == 3,
               f"{arch} supports images (H, W, C) with H = W in {res_list}; got shape {shape}. "
               f"Use arch='mlp' for flat data such as the 2-D toy sets.")
  h, w, c = shape
  errors.check(h == w, f"{arch} supports square images (H = W in {res_list}); got {h}x{w}.")
  hint = " Pad 28-px data (e.g. MNIST) to 32 in the data pipeline." if h == 28 else ""
  errors.check(h in resolutions, f"{arch} supports resolutions {res_list}; got {h}.{hint}")
  errors.check(c in CHANNELS,
               f"{arch} supports channels {', '.join(str(x) for x in CHANNELS)}; got {c}.")
  return shape


def _check_common(num_classes, width):
  errors.check(isinstance(num_classes, int) and num_classes >= 0,
               f"num_classes must be an int >= 0; got {num_classes!r}.")
  errors.check(width is None or (isinstance(width, int) and width > 0),
               f"width must be None (architecture default) or an int > 0; got {width!r}.")


UPSAMPLINGS = ("bilinear", "nearest")


def _resnet_options(arch, builder, shape, **options):
  """The resnet-only options that are set (not None), checked: set for another arch, or to an
  unknown value, or a plan without this image size, is a ConfigError."""
  choices = {"upsampling": UPSAMPLINGS, "plan": tuple(resnet.G_PLANS)}
  owner = {"upsampling": "the resnet generator", "plan": "the resnet nets"}
  chosen = {k: v for k, v in options.items() if v is not None}
  for key, value in chosen.items():
    errors.check(arch == "resnet", f"{builder}.{key} applies to {owner[key]} only (arch is "
                 f"{arch!r}); remove the binding or set it to None.")
    errors.check(value in choices[key], f"Unknown {builder}.{key} {value!r}. Choose one of: "
                 f"{', '.join(choices[key])}.")
  plan = chosen.get("plan")
  errors.check(plan is None or shape[0] in resnet.G_PLANS[plan],
               f"{builder}.plan = {plan!r} exists for "
               f"{', '.join(f'{r} px' for r in resnet.G_PLANS.get(plan, {}))} only; the images are "
               f"{shape[0]} px.")
  return chosen


@gin.configurable
def build_generator(arch="dcgan", output_shape=(32, 32, 3), latent_dim=100, num_classes=0,
                    width=None, spectral_norm=False, synchronized_bn=False, upsampling=None,
                    plan=None):
  """Builds a generator ``G(z, labels=None, training=None) -> samples in [-1, 1]``.

  Args:
    arch: "dcgan" (32/64 px), "resnet" (32/64/128 px) or "mlp" (flat shapes such as (2,)).
    output_shape: shape of one sample, from the dataset; images need 1 or 3 channels.
    latent_dim: size of the noise vector ``z``.
    num_classes: > 0 makes G class-conditional (conditional BN; one-hot input for the MLP); it then
      requires ``labels``.
    width: base width (channels ``c`` or MLP units); None uses the architecture default
      (dcgan 64; resnet 128 at 32 px, 64 at 64/128 px; mlp 256).
    spectral_norm: spectrally normalise every conv/dense of G.
    synchronized_bn: BN statistics across replicas (``BatchNormalization(synchronized=True)``).
    upsampling: the resnet G's block upsampling, "bilinear" (None: the default; the AS-GAN
      release) or "nearest" (SNGAN, the Rob-GAN and Fast-RobGAN releases). Other archs: None.
    plan: the resnet channel plan, "sngan" (None: the default), "small" (128 px, capped at 8c:
      the dogs-and-cats nets of the Rob-GAN and Fast-RobGAN releases) or "same" (32 / 64 px: the
      AS-GAN release's same-width nets, c = 256). Other archs: None.

  Returns:
    A built ``base.Generator`` (``keras.Model``) with ``latent_dim``, ``num_classes`` and
    ``output_shape_`` attributes.

  Raises:
    ConfigError: unknown arch, unsupported shape, or invalid sizes.
  """
  cls = errors.choose("generator architecture", arch, GENERATORS)
  shape = check_shape(arch, output_shape)
  _check_common(num_classes, width)
  errors.check(isinstance(latent_dim, int) and latent_dim > 0,
               f"latent_dim must be an int > 0; got {latent_dim!r}.")
  extra = _resnet_options(arch, "build_generator", shape, upsampling=upsampling, plan=plan)
  model = cls(shape, latent_dim=latent_dim, num_classes=num_classes, width=width,
              use_spectral_norm=spectral_norm, synchronized_bn=synchronized_bn,
              name=f"{arch}_generator", **extra)
  model.create_weights()
  return model


@gin.configurable
def build_discriminator(arch="dcgan", input_shape=(32, 32, 3), head="plain", num_classes=0,
                        width=None, spectral_norm=False, batch_norm=None, synchronized_bn=False,
                        plan=None):
  """Builds a discriminator ``D(x, labels=None, training=None) -> {"logits": [B], ...}``.

  Args:
    arch: "dcgan" (32/64 px), "resnet" (32/64/128 px) or "mlp" (flat shapes such as (2,)).
    input_shape: shape of one sample, from the dataset; images need 1 or 3 channels.
    head: "plain" (logit only), "ac" (adds ``class_logits [B, num_classes]``) or "projection"
      (``psi(h) + <embed(y), h>``; D then requires ``labels``).
    num_classes: number of classes; > 0 required by the "ac" and "projection" heads.
    width: base width; None uses the architecture default (as in ``build_generator``).
    spectral_norm: spectrally normalise every conv/dense (and the projection embedding).
    batch_norm: use BN where the architecture has it (dcgan: blocks 2..; resnet: inside the
      non-first blocks; mlp: only when ``MLPDiscriminator.use_batch_norm = True``). None (the
      default): BN unless ``spectral_norm`` (SNGAN discriminators have none); True keeps BN with
      spectral norm too (AS-GAN's release SN-DCGAN).
    synchronized_bn: BN statistics across replicas.
    plan: the resnet channel plan (as in ``build_generator``).

  Returns:
    A built ``base.Discriminator`` (``keras.Model``) with ``head`` and ``num_classes``.

  Raises:
    ConfigError: unknown arch/head, unsupported shape, a class head without classes.
  """
  cls = errors.choose("discriminator architecture", arch, DISCRIMINATORS)
  shape = check_shape(arch, input_shape)
  head = errors.choose("discriminator head", head, HEADS)
  _check_common(num_classes, width)
  errors.check(head == "plain" or num_classes > 0,
               f"head={head!r} needs num_classes > 0 (a labelled dataset); got num_classes=0. "
               f"Use head='plain' for unconditional training.")
  model = cls(shape, head=head, num_classes=num_classes, width=width,
              use_spectral_norm=spectral_norm, batch_norm=batch_norm,
              synchronized_bn=synchronized_bn, name=f"{arch}_discriminator",
              **_resnet_options(arch, "build_discriminator", shape, plan=plan))
  model.create_weights()
  return model
