"""Keras callbacks for GAN runs: summaries, checkpoints, sample grids, NaN guard, periodic eval,
console progress. `tfadvgan.training.engine` drives them between calls of the compiled step.

Intervals are in global train steps (G updates, `gan.global_step`), which survive resume. With
`steps_per_execution = k`, the engine calls these every k steps; an interval fires when the step
crosses a multiple of it (so at the first multiple of k at or after the configured step).

Why our own summary callback and not `keras.callbacks.TensorBoard`: that callback counts batches
from 0 in each `fit` call (wrong steps after a resume), and cannot write the fixed-z sample grid,
learning rates or throughput.
"""

import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfadvgan import images as images_lib
from tfadvgan import storage
from tfadvgan import optimizers
from tfadvgan import rng
from tfadvgan.metrics import diagnostics


def _crossed(step, last, every):
  return every and every > 0 and step // every > last // every


class StepCallback(keras.callbacks.Callback):
  """Base: exposes the global step and remembers the last step it saw.

  `state`: the `engine.RunState` of the engine that drives the callback (`Engine.state`), shared
  with it; None for a callback used outside a run (the step is then read from the device).
  """

  def __init__(self, gan, state=None):
    super().__init__()
    self.gan = gan
    self.state = state
    self.last_step = None

  def step(self):
    """The global step: the engine's host count inside `Engine.run` (no device read per batch),
    else read from the device."""
    host = self.state.host_step if self.state is not None else None
    return host if host is not None else int(self.gan.global_step.numpy())

  def on_train_begin(self, logs=None):
    self.last_step = self.step()


class PeriodicCallback(StepCallback):
  """Calls `on_interval(step, logs)` whenever the global step crosses a multiple of `every`
  (steps_per_execution > 1 may jump over several steps at once)."""

  every = 0

  def on_train_batch_end(self, batch, logs=None):
    step = self.step()
    if _crossed(step, self.last_step, self.every):
      self.on_interval(step, logs)
    self.last_step = step

  def on_interval(self, step, logs):
    raise NotImplementedError


class NanGuard(StepCallback):
  """Stops training at the first non-finite logged value (checked before any saving)."""

  def __init__(self, gan, state=None):
    super().__init__(gan, state)
    self.bad = None

  def on_train_batch_end(self, batch, logs=None):
    for key, value in (logs or {}).items():
      v = float(np.asarray(value))
      if not math.isfinite(v):
        self.bad = (self.step(), key, v)
        self.model.stop_training = True
        if self.state is not None:  # every worker sees the same reduced logs: stop them all now
          self.state.stop_now = True
        return


def weights_finite(gan):
  return all(np.all(np.isfinite(w)) for w in gan.generator.get_weights()
             + gan.discriminator.get_weights())


class Checkpointer(PeriodicCallback):
  """Saves every `every` steps and at the end, never with non-finite weights.

  Multi-worker (TensorFlow's documented pattern): every worker saves at the same steps, since a
  save may run collectives; the chief's manager writes the run's checkpoints, the other workers'
  managers write to `temp_dir`, which is deleted after each save.
  """

  def __init__(self, gan, manager, every, guard, temp_dir=None, state=None):
    super().__init__(gan, state)
    self.manager, self.every, self.guard, self.temp_dir = manager, every, guard, temp_dir

  def save(self):
    step = self.step()
    if self.guard.bad is not None or not weights_finite(self.gan):
      return None
    if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"ckpt-{step}"):
      return self.manager.latest_checkpoint
    path = self.manager.save(checkpoint_number=step)
    if self.temp_dir is not None:
      storage.rmtree(self.temp_dir)
      return None
    return path

  def on_interval(self, step, logs):
    self.save()

  def on_train_end(self, logs=None):
    self.save()


class Summaries(PeriodicCallback):
  """TensorBoard scalars (every logged metric, learning rates, step time, images/s). The engine
  resets the trackers after each interval (`engine.fit(..., reset_every=...)`), so each point
  averages one logging window."""

  def __init__(self, gan, writer, every, batch_size, state=None):
    super().__init__(gan, state)
    self.writer, self.every, self.batch_size = writer, every, batch_size
    self.window_start = None

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self.window_start = (time.perf_counter(), self.last_step)

  def on_interval(self, step, logs):
    t0, s0 = self.window_start
    now = time.perf_counter()
    steps = max(step - s0, 1)
    with self.writer.as_default(step=step):
      for key, value in (logs or {}).items():
        tf.summary.scalar(f"train/{key}", float(np.asarray(value)))
      tf.summary.scalar("lr/discriminator", optimizers.current_learning_rate(
          self.gan.d_optimizer))
      tf.summary.scalar("lr/generator", optimizers.current_learning_rate(self.gan.g_optimizer))
      tf.summary.scalar("perf/ms_per_step", 1000.0 * (now - t0) / steps)
      tf.summary.scalar("perf/images_per_sec",
                        steps * self.batch_size * self.gan.n_dis / max(now - t0, 1e-9))
    self.writer.flush()
    self.window_start = (now, step)


class SampleGrid(PeriodicCallback):
  """Writes a grid of samples from a fixed z (EMA generator when enabled) to PNG and TensorBoard.

  Nothing is written from a step whose logs or weights are not finite (`guard`)."""

  def __init__(self, gan, writer, every, out_dir, num=64, seed=rng.SAMPLE_GRID_OFFSET, guard=None,
               state=None):
    super().__init__(gan, state)
    self.writer, self.every, self.out_dir, self.guard = writer, every, out_dir, guard
    self.last_path = None
    generator = gan.generator
    self.z = tf.random.stateless_normal([num, generator.latent_dim], seed=[seed, rng.SAMPLE_GRID_Z])
    self.labels = None
    if gan.conditional:
      self.labels = tf.range(num, dtype=tf.int32) % generator.num_classes

  def write(self):
    step = self.step()
    if (self.guard is not None and self.guard.bad is not None) or not weights_finite(self.gan):
      return None
    samples = self.gan.sampler()(self.z, self.labels, training=False)
    if len(samples.shape) != 4:  # 2-D toy data: no image grid
      return None
    grid = images_lib.grid(samples.numpy())
    path = os.path.join(self.out_dir, f"samples_{step:08d}.png")
    images_lib.write_png(path, grid)
    with self.writer.as_default(step=step):
      tf.summary.image("samples", grid[None].astype(np.float32) / 255.0)
    self.last_path = path
    return path

  def on_interval(self, step, logs):
    self.write()

  def on_train_end(self, logs=None):
    if self.last_path != os.path.join(self.out_dir, f"samples_{self.step():08d}.png"):
      self.write()  # the last step's grid, unless its interval just wrote it


class RunSummary(StepCallback):
  """Writes, once at the first step of a (resumed) run: the operative gin config as text, a grid
  of real images, and the gin bindings that differ from their defaults as TensorBoard hparams
  (`tensorboard.plugins.hparams`, when TensorBoard is installed)."""

  def __init__(self, gan, writer, config_text, real=None, hparams=None, state=None):
    super().__init__(gan, state)
    self.writer, self.config_text, self.real, self.hparams = writer, config_text, real, hparams

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    with self.writer.as_default(step=self.last_step):
      tf.summary.text("config/operative", "```\n" + self.config_text + "\n```")
      if self.real is not None and len(self.real.shape) == 4:
        grid = images_lib.grid(np.asarray(self.real))
        tf.summary.image("real_images", grid[None].astype(np.float32) / 255.0)
      if self.hparams:
        try:
          from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
        except ImportError:
          hp = None
        if hp is not None:
          hp.hparams(self.hparams)
    self.writer.flush()


class PeriodicEval(PeriodicCallback):
  """Every `every` steps: `best.save_candidate` on every worker (`best`: a
  `tfadvgan.training.best.BestCheckpoint`, or None), then, on the chief (`eval_fn` not None),
  `eval_fn(gan, step)`, its scalars logged (`writer`) and `best.update`."""

  def __init__(self, gan, writer, every, eval_fn, best=None, state=None):
    super().__init__(gan, state)
    self.writer, self.every, self.eval_fn, self.best = writer, every, eval_fn, best
    self.last = None  # (step, results) of the latest evaluation

  def on_interval(self, step, logs):
    if self.best is not None:
      self.best.save_candidate(step)
    if self.eval_fn is None:  # another worker: it takes part in the save only
      return
    results = self.eval_fn(self.gan, step) or {}
    self.last = (step, results)
    if self.writer is not None:
      with self.writer.as_default(step=step):
        for key, value in results.items():
          tf.summary.scalar(f"eval/{key}", float(value))
    if self.best is not None:
      classifier = getattr(self.eval_fn, "classifier", None)
      record = {} if classifier is None else dict(
          classifier=classifier.name, n=self.eval_fn.num_samples,
          **self.eval_fn.record_fields())
      self.best.update(step, results, record)

  def summary(self, model_dir):
    """The end-of-run lines: the latest results, the best checkpoint, results.json."""
    if self.last is None:
      return ""
    step, results = self.last
    values = ", ".join(f"{k} {float(v):.4g}" for k, v in results.items())
    lines = f"  eval         step {step}: {values}\n"
    best = self.best.best if self.best is not None else None
    if best is not None:
      lines += (f"  best         {storage.join(model_dir, 'checkpoints', best['checkpoint'])} "
                f"({best['metric']} {best['value']:.4g} at step {best['step']}; --step=best)\n")
    results_file = storage.join(model_dir, "eval", "results.json")
    if storage.exists(results_file):
      lines += f"  results      {results_file}\n"
    return lines


class Diagnostics(PeriodicCallback):
  """Every `every` steps, logs `tfadvgan.metrics.diagnostics.batch_diagnostics` on a fixed real
  batch (D accuracy clean / under FGSM, input-gradient L1 and sparsity, confidence on real vs
  adversarial, Wasserstein estimate) and, with `attack_success`, DAT's xi_fake / xi_real."""

  def __init__(self, gan, writer, every, real, labels=None, epsilon=1.0 / 255,
               attack_success=False, max_iters=50, state=None):
    super().__init__(gan, state)
    self.writer, self.every = writer, every
    self.real, self.labels, self.epsilon = real, labels, epsilon
    self.attack_success, self.max_iters = attack_success, max_iters
    self.z = None
    if attack_success:  # fixed fakes' noise, drawn once
      self.z = tf.random.stateless_normal([real.shape[0], gan.generator.latent_dim],
                                         seed=rng.DIAGNOSTICS_Z)

  def compute(self):
    results = diagnostics.batch_diagnostics(self.gan, self.real, self.labels, self.epsilon)
    if self.attack_success:
      fake = self.gan.generator(self.z, self.labels if self.gan.conditional else None,
                                training=False)
      xi = diagnostics.dat_attack_success(
          diagnostics.discriminator_fn(self.gan), self.real, fake, loss=self.gan.loss_fn,
          max_iters=self.max_iters, real_labels=self.labels, fake_labels=self.labels)
      results.update({k: v for k, v in xi.items()
                      if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)})
    return results

  def on_interval(self, step, logs):
    with self.writer.as_default(step=step):
      for key, value in self.compute().items():
        tf.summary.scalar(f"diag/{key}", float(value))


def _duration(seconds):
  seconds = int(round(max(seconds, 0)))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress(StepCallback):
  """Console progress in global steps (a resumed run shows where it is, not 1/N).

  On a terminal: one line rewritten in place (at most every 0.25 s). Otherwise (a log file, CI):
  one plain line per `every` steps and one at the end, with the step, every logged value, the
  ms/step of the window and the ETA.
  """

  def __init__(self, gan, every, num_steps, stream=None, tty=None, state=None):
    super().__init__(gan, state)
    self.every, self.num_steps = every, num_steps
    self.stream = stream or sys.stdout
    self.tty = self.stream.isatty() if tty is None else tty
    self.begin = self.window = None
    self.last_draw = 0.0
    self.printed_step = None

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    now = time.perf_counter()
    self.begin = self.window = (now, self.last_step)
    self.first_done = None

  def line(self, step, logs, ms_per_step):
    eta = ""
    if self.first_done is not None and step > self.first_done[1]:
      t0, s0 = self.first_done  # after the first call (which includes tracing and compilation)
      rate = (time.perf_counter() - t0) / (step - s0)
      eta = f"  ETA {_duration(rate * (self.num_steps - step))}"
    keys = ("d_loss", "g_loss")
    if not self.tty:
      keys += tuple(sorted(k for k in (logs or {}) if k not in keys))
    values = "  ".join(f"{k} {logs[k]:.4g}" for k in keys if k in (logs or {}))
    width = len(str(self.num_steps))
    return (f"step {step:>{width}d}/{self.num_steps}  {values}  {ms_per_step:.1f} ms/step"
            f"{eta}")

  def on_train_batch_end(self, batch, logs=None):
    step = self.step()
    now = time.perf_counter()
    if self.first_done is None:
      self.first_done = (now, step)
    if self.tty:
      if now - self.last_draw >= 0.25 or step >= self.num_steps:
        t0, s0 = self.begin
        ms = 1000.0 * (now - t0) / max(step - s0, 1)
        self.stream.write("\r" + self.line(step, logs, ms) + "\x1b[K")
        self.stream.flush()
        self.last_draw = now
    elif _crossed(step, self.last_step, self.every) or step >= self.num_steps:
      t0, s0 = self.window
      ms = 1000.0 * (now - t0) / max(step - s0, 1)
      self.stream.write(self.line(step, logs, ms) + "\n")
      self.stream.flush()
      self.window = (now, step)
      self.printed_step = step
    self.last_step = step

  def on_train_end(self, logs=None):
    step = self.step()
    if self.tty:
      self.stream.write("\n")
    elif self.printed_step != step and logs:
      t0, s0 = self.window
      ms = 1000.0 * (time.perf_counter() - t0) / max(step - s0, 1)
      self.stream.write(self.line(step, logs, ms) + "\n")
    self.stream.flush()
