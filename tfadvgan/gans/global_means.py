"""D losses that use means over the global batch, under per-replica XLA (DAT's targets).

Under Mirrored / MultiWorker with XLA, each replica's gradient computation is one compiled function
(`GAN.replica_compiled`), and an all-reduce cannot sit inside it. A loss that needs a mean over the
global batch (DAT's targets, the other side's batch mean) therefore runs each D update in two
compiled pieces: this replica's sums and counts, one all-reduce outside, then the gradients with
the means handed in (docs/design.md, "Decisions"). `GlobalMeans` is a mixin a method lists after
`base.GAN` among its bases (it overrides nothing there); it holds no variables.
"""

import tensorflow as tf


class GlobalMeans:
  """The split D update of a loss built on global-batch means (a mixin for `base.GAN`)."""

  _given_means = None  # inside the second piece of `gradients_with_global_means`

  def given_means(self):
    """The global means `gradients_with_global_means` hands its gradient piece; None elsewhere
    (the loss then all-reduces them itself)."""
    return self._given_means

  def gradients_with_global_means(self, names, sums_fn, real, labels, fake, fake_labels,
                                  step_seed):
    """`_discriminator_gradients` under per-replica XLA for a D loss that uses means over the
    global batch: `sums_fn(real, labels, fake, fake_labels)` gives this replica's [sums...,
    counts...] (compiled as `names[0]`); one all-reduce outside; then the gradients (compiled as
    `names[1]`), while the loss reads the means with `given_means()`."""
    sums = self.replica_compiled(names[0], sums_fn)(real, labels, fake, fake_labels)
    sums = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, sums)
    half = int(sums.shape[0]) // 2
    means = sums[:half] / sums[half:]

    def gradients(real, labels, fake, fake_labels, step_seed, means):
      object.__setattr__(self, "_given_means", means)
      try:
        return self._discriminator_gradients(real, labels, fake, fake_labels, step_seed)
      finally:
        object.__setattr__(self, "_given_means", None)
    return self.replica_compiled(names[1], gradients)(real, labels, fake, fake_labels, step_seed,
                                                      means)

  def keeping_d_state(self, fn):
    """`fn()` (D passes), then D's non-trainable state (BN moving statistics) put back as it was:
    for a pass that the loss runs again, so that the state moves once per update."""
    state = self.discriminator.non_trainable_variables
    saved = [tf.identity(v.value) for v in state]
    with tf.control_dependencies(saved):
      out = fn()
    with tf.control_dependencies(tf.nest.flatten(out)):
      for variable, value in zip(state, saved):
        variable.assign(value)
    return tf.nest.map_structure(tf.identity, out)
