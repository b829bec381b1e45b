"""`tfadvgan.fit(gan, dataset, ...)`: Keras-style training from Python under every strategy.

Keras's own `Model.fit` cannot drive MultiWorkerMirroredStrategy (keras-team/keras#20585), so this
runs the project's engine (`engine.Engine`, the loop `scripts/train.py` uses) with Keras's fit
conventions: epochs of `steps_per_epoch` train steps, any Keras callbacks (epoch and batch hooks,
`stop_training`, BackupAndRestore's resume epoch), a progress bar, and a `History` returned. Build
and compile the GAN under `strategy.scope()` to train under that strategy.
"""

import keras

from tfadvgan import data as data_lib
from tfadvgan import errors
from tfadvgan.training import engine as engine_lib


def fit(gan, dataset, epochs=1, steps_per_epoch=None, callbacks=None, verbose="auto",
        initial_epoch=0):
  """Trains a compiled GAN on `dataset` with the project's engine, under the GAN's strategy.

  Args:
    gan: a `tfadvgan.GAN` (any method), built and compiled under the strategy's scope.
    dataset: a `tf.data.Dataset` of image batches `[B, *shape]` (floats in [-1, 1], or uint8),
      of `(images, labels)` batches (labels `[B]`; needed by conditional GANs), or of the dict
      batches of `tfadvgan.data.make_train_dataset`. A static batch size is required
      (`batch(B, drop_remainder=True)`): it is the global batch of each D and G update; with
      `n_dis > 1` each train step takes `n_dis` batches' worth of examples. For plain batches the
      noise of train step s is drawn from `(gan.seed, s)`, as `make_train_dataset(seed=gan.seed)`
      draws it for batch s (`GAN.train_batches`).
    epochs: index of the last epoch (as in Keras: with `initial_epoch`, trains epochs
      `initial_epoch .. epochs - 1`).
    steps_per_epoch: train steps per epoch; None: one pass over a finite dataset. The dataset is
      repeated as needed: epochs continue where the last one stopped.
    callbacks: Keras callbacks (TensorBoard, BackupAndRestore, EarlyStopping, ModelCheckpoint
      with `save_weights_only=True`, your own). Under multi-worker every worker runs them.
    verbose: 0 silent, 1 progress bar, 2 one line per epoch; "auto" is 1.
    initial_epoch: epoch to start from (BackupAndRestore sets it when resuming).

  Returns:
    A `keras.callbacks.History`: per epoch, the mean of each logged value over that epoch.

  Raises:
    ConfigError: a dataset of the wrong form or shapes (`tfadvgan.data.train_batches`), no
      `steps_per_epoch` for an infinite dataset, an uncompiled GAN.
  """
  errors.check(getattr(gan, "g_optimizer", None) is not None,
               "fit: compile the GAN first: gan.compile(d_optimizer=..., g_optimizer=...).")
  epochs = errors.check_int("fit epochs", epochs, low=0)
  initial_epoch = errors.check_int("fit initial_epoch", initial_epoch, low=0)
  verbose = 1 if verbose == "auto" else verbose
  _, per_pass = gan.train_batches(dataset)  # checks the dataset before any callback runs
  steps = data_lib.steps_per_epoch(steps_per_epoch, per_pass)
  engine = engine_lib.for_gan(gan)
  history = keras.callbacks.History()
  cbs = keras.callbacks.CallbackList(list(callbacks or []) + [history], add_progbar=verbose != 0,
                                     verbose=verbose, epochs=epochs, steps=steps, model=gan)
  engine.begin(cbs)  # BackupAndRestore restores the weights and the step here
  iterator = iter(engine.distribute(gan.train_batches(dataset)[0]))  # noise from that step on
  initial_epoch = gan._initial_epoch or initial_epoch  # pylint: disable=protected-access
  logs = {}
  for epoch in range(initial_epoch, epochs):
    cbs.on_epoch_begin(epoch)
    logs = engine.steps(iterator, cbs, steps, reset_first=True)
    cbs.on_epoch_end(epoch, dict(logs))
    if gan.stop_training:
      break
  cbs.on_train_end(logs)
  return history

