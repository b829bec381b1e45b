"""What the training step does around its gradients on every replica: the mean over the global
batch that is differentiated, the float16 loss scale (`keras.optimizers.LossScaleOptimizer`), the
finite check of a loss-scaled update and the norms that are logged, and the replica count and id.
"""

import keras
import tensorflow as tf


def replica_count():
  """Replicas in sync in the current replica context (1 outside one)."""
  ctx = tf.distribute.get_replica_context()
  return ctx.num_replicas_in_sync if ctx is not None else 1


def replica_id():
  """This replica's id in its sync group, an int32 tensor (0 outside a replica context)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    return tf.constant(0, tf.int32)
  return tf.cast(ctx.replica_id_in_sync_group, tf.int32)


def average(per_example):
  """Mean over the global batch, for gradients (a partial sum on each replica)."""
  return tf.nn.compute_average_loss(per_example)


def loss_scale(optimizer):
  """The current dynamic loss scale of a `keras.optimizers.LossScaleOptimizer` (float16 mixed
  precision), as a float32 tensor; None for any other optimizer."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return tf.cast(tf.convert_to_tensor(optimizer.dynamic_scale), tf.float32)
  return None


def scaled(loss, scale):
  """`loss * scale` (the loss the tape differentiates under float16), or `loss` when no scale."""
  return loss if scale is None else loss * scale


def all_finite(grads):
  """True iff every gradient is finite: what a LossScaleOptimizer checks before applying."""
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])


def unscaled_norm(grads, scale):
  """Global norm of the gradients as applied: unscaled, and 0 for an update the loss-scale
  optimizer skips (non-finite scaled gradients), so that logs stay finite."""
  norm = tf.linalg.global_norm(grads)
  if scale is None:
    return norm
  return tf.where(all_finite(grads), norm / scale, 0.0)
