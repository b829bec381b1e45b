"""Input-space attacks on the discriminator, as pure functions compiled inside the train step.

Convention: ``attack(x, loss_fn, epsilon, ...) -> x_adv`` where ``loss_fn(x) -> [B]`` is a
per-example loss the attack *increases*. Input gradients come from a tape on
``tf.reduce_sum(loss_fn(x))``, so each example's gradient is independent of the batch size (no
``1/B`` from a mean). Randomness only from explicit stateless ``seed`` tensors (``[2]`` int32).

The attacks, one module each (the papers' readings behind them are in docs/readings/):
``untargeted`` (``fgsm``, ``pgd`` and its ``default_pgd_step_size``, the ``gaussian`` ablation),
``targeted`` (DAT's ``targeted_one_step`` and ``targeted_gap``) and ``free`` (free adversarial
training's ``free_delta_init``, ``free_delta_update``, ``free_adversarial_input``); ``common``
holds what they share. Every name is importable from ``tfadvgan.attacks``.

Choices common to all:

- The returned perturbation is a constant: ``x_adv = clip(x + tf.stop_gradient(delta))``; gradients
  still flow to ``x`` itself (identity, through the range clip).
- ``clip=True`` (default) clips ``x_adv`` to ``[clip_min, clip_max] = [-1, 1]`` (the image range).
  Turn it off for unbounded data (2-D toy sets). Because clean ``x`` lies in the range, the range
  clip never pushes ``x_adv`` outside the epsilon-ball.

Random numbers come from ``tfadvgan.rng`` (``uniform`` / ``normal``): Philox bits from
``tf.random.stateless_uniform(dtype=uint32, alg="philox")`` turned into floats by our own arithmetic
(24-bit uniforms; Box-Muller normals). TF's float stateless kernels give *different* numbers under
``jit_compile=True`` than in eager/graph mode on the same seed; the integer bits agree, so these
helpers give identical noise with and without XLA. ``split_seed`` replaces
``tf.random.experimental.stateless_split``, which also disagrees under XLA for seeds with negative
entries. A seed is either split or drawn from, never both.

``get(name)`` returns ``fgsm``, ``pgd``, ``gaussian`` or ``none`` wrapped to one calling convention
``attack(x, loss_fn, epsilon, **kwargs)``; keyword arguments that belong to another attack (``seed``,
``grad``, ``num_steps``, ``step_size``, ``random_start``, ``norm``) are ignored, any other unknown
keyword raises ConfigError.
"""
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.attacks import common
from tfadvgan.attacks.free import FREE_DELTA_GRADIENTS
from tfadvgan.attacks.free import FREE_DELTA_INITS
from tfadvgan.attacks.free import free_adversarial_input
from tfadvgan.attacks.free import free_delta_init
from tfadvgan.attacks.free import free_delta_update
from tfadvgan.attacks.targeted import OBJECTIVES
from tfadvgan.attacks.targeted import DIRECTIONS
from tfadvgan.attacks.targeted import targeted_gap
from tfadvgan.attacks.targeted import targeted_one_step
from tfadvgan.attacks.untargeted import default_pgd_step_size
from tfadvgan.attacks.untargeted import fgsm
from tfadvgan.attacks.untargeted import gaussian
from tfadvgan.attacks.untargeted import NORMS
from tfadvgan.attacks.untargeted import pgd
from tfadvgan.rng import normal, split_seed, uniform  # noqa: F401  (the attacks' noise)

__all__ = [
    "fgsm", "pgd", "default_pgd_step_size", "gaussian", "NORMS", "targeted_one_step",
    "targeted_gap", "DIRECTIONS", "OBJECTIVES", "free_delta_init", "free_delta_update",
    "free_adversarial_input", "FREE_DELTA_INITS", "FREE_DELTA_GRADIENTS", "none", "get",
    "check_bindings", "REGISTRY",
]

_BINDING = {"fgsm": "attack_fgsm", "pgd": "attack_pgd", "gaussian": "attack_gaussian",
            "targeted_one_step": "attack_targeted_one_step"}


def check_bindings(name):
  """Checks the gin-bound knobs of attack ``name`` now (GAN construction), not at the first trace.

  Args:
    name: ``fgsm``, ``pgd``, ``gaussian``, ``targeted_one_step`` (others pass unchecked).

  Raises:
    ConfigError: a bound value is not finite or out of range (the message names the binding).
  """
  binding = _BINDING.get(name)
  if binding is None:
    return
  fn = {"fgsm": fgsm, "pgd": pgd, "gaussian": gaussian,
        "targeted_one_step": targeted_one_step}[name]
  kw = errors.bound_kwargs(fn)
  common.check_range(binding, kw["clip_min"], kw["clip_max"])
  for what in ("epsilon", "step_size"):
    if what in kw:
      common.check_epsilon(kw[what], what, binding)
  if "norm" in kw:
    errors.check(kw["norm"] in NORMS,
                 f"{binding}.norm must be one of {', '.join(NORMS)}; got {kw['norm']!r}.")


def none(x, loss_fn=None, epsilon=0.0, **unused):
  """No attack: returns ``x`` unchanged."""
  del loss_fn, epsilon, unused
  return tf.convert_to_tensor(x)


_SHARED_KWARGS = {"seed", "grad", "num_steps", "step_size", "random_start", "norm", "clip",
                  "clip_min", "clip_max"}


def _adapter(name, fn, accepted):
  """Wraps ``fn`` as ``attack(x, loss_fn, epsilon, **kwargs)`` keeping only ``accepted`` kwargs."""

  def attack(x, loss_fn, epsilon, **kwargs):
    unknown = set(kwargs) - _SHARED_KWARGS
    errors.check(not unknown, f"Attack {name!r} got unknown arguments {sorted(unknown)}; valid: "
                 f"{', '.join(sorted(_SHARED_KWARGS))}.")
    kept = {k: v for k, v in kwargs.items() if k in accepted}
    if name == "gaussian":
      return fn(x, epsilon, **kept)
    return fn(x, loss_fn, epsilon, **kept)

  attack.__name__ = f"{name}_attack"
  attack.__doc__ = f"``{name}`` in the shared convention ``attack(x, loss_fn, epsilon, **kwargs)``."
  return attack


_CLIP = {"clip", "clip_min", "clip_max"}
REGISTRY = {
    "fgsm": _adapter("fgsm", fgsm, _CLIP | {"grad"}),
    "pgd": _adapter("pgd", pgd, _CLIP | {"num_steps", "step_size", "random_start", "seed",
                                         "norm"}),
    "gaussian": _adapter("gaussian", gaussian, _CLIP | {"seed"}),
    "none": _adapter("none", none, set()),
}


def get(name):
  """Returns the attack for ``name`` in the shared convention (``None`` gives ``none``).

  Args:
    name: ``fgsm``, ``pgd``, ``gaussian``, ``none``, ``None``, or a callable (passes through).

  Returns:
    ``attack(x, loss_fn, epsilon, **kwargs) -> x_adv``; see the module docstring.

  Raises:
    ConfigError: unknown name (the message lists the valid names).
  """
  if name is None:
    return REGISTRY["none"]
  return errors.choose("attack", name, REGISTRY)
