"""LeCam regularisation (Tseng et al., Regularizing Generative Adversarial Networks under Limited
Data, CVPR 2021; the authors' code, google/lecam-gan).

D's loss gains  weight * R_LC  with, per example,

  R_LC = relu(D(x_r) - alpha_F)^2 + relu(alpha_R - D(x_f))^2     (the release, `one_sided`)
  R_LC = (D(x_r) - alpha_F)^2 + (D(x_f) - alpha_R)^2             (the paper's Eq. 3)

where alpha_R and alpha_F are exponential moving averages of D's mean logit on the real and on the
fake batch of every D update: alpha <- decay * alpha + (1 - decay) * mean. Readings
(docs/readings/diffaugment_lecam.md, "LeCam"):
- The means are over the *global* batch (one all-reduce), so the anchors are the same on 1 or N
  replicas and on every replica; each replica keeps its own copy (a SyncOnRead variable that
  every replica updates alike), checkpointed once.
- An update's term uses the anchors as they were before it; its own batch means enter the EMA
  after its gradient (the release folds them in first, with weight 1 - decay). This keeps the
  EMA update out of the compiled gradient pieces and needs no second D pass under per-replica XLA.
- Before G step `start_step` the anchors copy each batch's means (decay 0) and the term is off,
  as the release's `ema_losses.start_itr`; the term is also off in the very first D update, whose
  anchors hold no D output yet.
"""

import tensorflow as tf


def _replica_copy(value, name):
  """A variable each replica updates alike in replica context (no aggregation on write)."""
  return tf.Variable(value, trainable=False, name=name,
                     synchronization=tf.VariableSynchronization.ON_READ,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def global_means(values):
  """Mean over replicas of equal-sized per-replica means (= the global-batch mean)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is not None and ctx.num_replicas_in_sync > 1:
    values = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, values)
  return values


def term(real_logits, fake_logits, anchor_real, anchor_fake, one_sided=True):
  """[B] per-example R_LC (module doc): reals pulled to the fake anchor, fakes to the real one."""
  gap_real = tf.cast(real_logits, tf.float32) - anchor_fake
  gap_fake = anchor_real - tf.cast(fake_logits, tf.float32)
  if one_sided:
    gap_real, gap_fake = tf.nn.relu(gap_real), tf.nn.relu(gap_fake)
  return tf.square(gap_real) + tf.square(gap_fake)


class LeCam(tf.Module):
  """The anchors (method state, checkpointed) and the knobs of the LeCam term.

  Args:
    weight: lambda, the multiplier of R_LC in D's loss (the release: 0.3 on CIFAR-10).
    decay: the EMA decay of the anchors (the BigGAN release: 0.9; its StyleGAN2 code: 0.99).
    start_step: G step from which the EMA decays and the term applies.
    one_sided: the release's relu form (True) or the paper's squares (False).
  """

  def __init__(self, weight, decay=0.9, start_step=0, one_sided=True):
    super().__init__(name="lecam")
    self.weight = float(weight)
    self.decay = float(decay)
    self.start_step = int(start_step)
    self.one_sided = bool(one_sided)
    self.anchors = _replica_copy(tf.zeros([2]), "lecam_anchors")  # [alpha_R, alpha_F]
    self.updates = _replica_copy(tf.zeros([], tf.int64), "lecam_updates")

  def active(self, step):
    """1.0 when the term applies at G step `step`, else 0.0."""
    on = tf.logical_and(self.updates > 0, tf.cast(step, tf.int64) >= self.start_step)
    return tf.cast(on, tf.float32)

  def per_example(self, real_logits, fake_logits, step):
    """(weighted [B] term for D's loss, the unweighted [B] term to log)."""
    anchors = tf.convert_to_tensor(self.anchors)
    value = term(real_logits, fake_logits, anchors[0], anchors[1], self.one_sided)
    return self.weight * self.active(step) * value, value

  def update(self, real_mean, fake_mean, step):
    """Folds one D update's (per-replica) mean logits into the anchors; returns the anchors."""
    means = global_means(tf.cast(tf.stack([real_mean, fake_mean]), tf.float32))
    fresh = tf.logical_or(self.updates == 0, tf.cast(step, tf.int64) < self.start_step)
    decay = tf.where(fresh, 0.0, self.decay)
    new = decay * tf.convert_to_tensor(self.anchors) + (1.0 - decay) * means
    with tf.control_dependencies([self.anchors.assign(new)]):
      self.updates.assign_add(1)
    return new
