"""GAN losses in the DAT form (Eq. 2 of the direct adversarial training paper), per example.

The discriminator maximises ``E[g1(D(x_r))] + E[g2(D(x_f))]`` (DAT Eq. 2). Each loss object exposes,
for logits ``t`` of shape ``[B]``:

- ``g1(t)``, ``g2(t)``: the DAT pair, applied to the logits of real and fake examples;
- ``d_real(t) = -g1(t)`` and ``d_fake(t) = -g2(t)``: D *minimises* ``d_real(t_r) + d_fake(t_f)``;
- ``g(t_f)``: what the generator minimises on fake logits.

| name             | g1(t)              | g2(t)              | g(t_f)              |
| ---------------- | ------------------ | ------------------ | ------------------- |
| `non_saturating` | -softplus(-t)      | -softplus(t)       | softplus(-t_f)      |
| `minimax`        | -softplus(-t)      | -softplus(t)       | -softplus(t_f)      |
| `hinge`          | min(0, t - 1)      | min(0, -t - 1)     | -t_f                |
| `wasserstein`    | t                  | -t                 | -t_f                |
| `least_squares`  | -(t - 1)^2 / 2     | -t^2 / 2           | (t_f - 1)^2 / 2     |

``-softplus(-t) = log sigmoid(t)`` and ``-softplus(t) = log(1 - sigmoid(t))``, so the vanilla GAN
terms are computed without ever forming ``sigmoid(t)``: finite values and gradients for any finite
``t``. ``least_squares`` is LSGAN with 0/1 targets and factor 1/2 on both players.

Also the class terms Rob-GAN and Fast-RobGAN need (per example): ``class_cross_entropy`` (sparse
softmax cross entropy) and ``kl_to_uniform`` (KL divergence between the class posterior and the
uniform distribution over classes, either direction).
"""
import math

import gin
import tensorflow as tf

from tfadvgan import errors


class Loss:
  """A GAN loss: per-example functions of discriminator logits ``t`` (shape ``[B]``).

  Subclasses define ``g1``, ``g2`` (DAT Eq. 2, D maximises) and ``g`` (G minimises). ``d_real`` and
  ``d_fake`` are the D-minimised forms ``-g1`` and ``-g2``.
  """

  name = "loss"

  def g1(self, t):
    """Real-sample term D maximises: ``E[g1(D(x_r))]``."""
    raise NotImplementedError

  def g2(self, t):
    """Fake-sample term D maximises: ``E[g2(D(x_f))]``."""
    raise NotImplementedError

  def g(self, t_fake):
    """Per-example generator loss on fake logits (G minimises)."""
    raise NotImplementedError

  def d_real(self, t):
    """Per-example D loss on real logits (D minimises): ``-g1(t)``."""
    return -self.g1(t)

  def d_fake(self, t):
    """Per-example D loss on fake logits (D minimises): ``-g2(t)``."""
    return -self.g2(t)

  def __repr__(self):
    return f"losses.get({self.name!r})"


class NonSaturating(Loss):
  """Vanilla GAN D loss with the non-saturating generator loss ``-log sigmoid(t_f)``."""

  name = "non_saturating"

  def g1(self, t):
    return -tf.nn.softplus(-t)

  def g2(self, t):
    return -tf.nn.softplus(t)

  def g(self, t_fake):
    return tf.nn.softplus(-t_fake)


class Minimax(NonSaturating):
  """Vanilla GAN with the original (saturating) minimax generator loss ``log(1 - sigmoid(t_f))``."""

  name = "minimax"

  def g(self, t_fake):
    return -tf.nn.softplus(t_fake)


class Hinge(Loss):
  """Hinge loss (Lim & Ye; Miyato et al.): D on ``max(0, 1 -+ t)``, G on ``-t_f``."""

  name = "hinge"

  def g1(self, t):
    return tf.minimum(tf.zeros_like(t), t - 1.0)

  def g2(self, t):
    return tf.minimum(tf.zeros_like(t), -t - 1.0)

  def g(self, t_fake):
    return -t_fake


class Wasserstein(Loss):
  """WGAN critic loss: ``g1(t) = t``, ``g2(t) = -t``; G minimises ``-t_f``."""

  name = "wasserstein"

  def g1(self, t):
    return tf.identity(t)

  def g2(self, t):
    return -t

  def g(self, t_fake):
    return -t_fake


class LeastSquares(Loss):
  """LSGAN with targets 0 (fake) / 1 (real) and factor 1/2 for both players."""

  name = "least_squares"

  def g1(self, t):
    return -0.5 * tf.square(t - 1.0)

  def g2(self, t):
    return -0.5 * tf.square(t)

  def g(self, t_fake):
    return 0.5 * tf.square(t_fake - 1.0)


non_saturating = NonSaturating()
minimax = Minimax()
hinge = Hinge()
wasserstein = Wasserstein()
least_squares = LeastSquares()

REGISTRY = {
    loss.name: loss for loss in (non_saturating, minimax, hinge, wasserstein, least_squares)
}


def get(name):
  """Returns the loss object registered under ``name`` (a ``Loss`` instance passes through).

  Args:
    name: one of ``non_saturating``, ``minimax``, ``hinge``, ``wasserstein``, ``least_squares``, or
      a ``Loss`` instance.

  Returns:
    A ``Loss`` with per-example methods ``d_real``, ``d_fake``, ``g``, ``g1``, ``g2``.

  Raises:
    ConfigError: unknown name (the message lists the valid names).
  """
  if isinstance(name, Loss):
    return name
  return errors.choose("loss", name, REGISTRY)


def class_cross_entropy(class_logits, labels):
  """Per-example sparse softmax cross entropy ``-log p(labels | class_logits)``.

  Args:
    class_logits: ``[B, C]`` float logits of an auxiliary classifier.
    labels: ``[B]`` int labels in ``[0, C)``.

  Returns:
    ``[B]`` float cross entropies.
  """
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=class_logits)


KL_DIRECTIONS = ("uniform_to_p", "p_to_uniform")


@gin.configurable
def kl_to_uniform(class_logits, direction="uniform_to_p"):
  """Per-example KL divergence between the class posterior ``p = softmax(class_logits)`` and U.

  Fast-RobGAN (Eq. 3.2) adds ``KL(Pr(y | D^c(x_f)), U)`` to the D loss on fakes. The two directions:

  - ``uniform_to_p``: ``KL(U || p) = -log C - mean_c log p_c`` (what PyTorch's
    ``F.kl_div(log_softmax(logits), uniform)`` computes; bounded only by the smallest p_c);
  - ``p_to_uniform``: ``KL(p || U) = sum_c p_c log p_c + log C`` (bounded by ``log C``).

  Both are zero exactly when ``p`` is uniform and are computed from ``log_softmax`` (stable).

  Args:
    class_logits: ``[B, C]`` float logits.
    direction: ``"uniform_to_p"`` (default) or ``"p_to_uniform"``.

  Returns:
    ``[B]`` float KL divergences (>= 0).

  Raises:
    ConfigError: unknown direction.
  """
  errors.check(direction in KL_DIRECTIONS,
               f"kl_to_uniform direction must be one of {', '.join(KL_DIRECTIONS)}; "
               f"got {direction!r}.")
  num_classes = class_logits.shape[-1]
  errors.check(num_classes is not None and num_classes >= 1,
               f"kl_to_uniform needs a static number of classes; got logits shape "
               f"{class_logits.shape}.")
  log_p = tf.nn.log_softmax(class_logits, axis=-1)
  log_c = tf.constant(math.log(num_classes), dtype=log_p.dtype)
  if direction == "uniform_to_p":
    return -log_c - tf.reduce_mean(log_p, axis=-1)
  return tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1) + log_c
