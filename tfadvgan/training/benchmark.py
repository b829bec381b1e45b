"""Step-time benchmark: the compiled train step of several configs, in one process, interleaved.

Each config is parsed on its own (gin is cleared in between), built, and fed one cached batch
repeated, so the input pipeline is out of the measurement. The first `warmup` calls of each config
(tracing and XLA compilation included) are not timed. Then rounds of `chunk` timed calls go to each
config in turn, so drifts of the machine's speed hit all of them alike. What is timed is exactly
the function training calls (`tfadvgan.training.engine.Engine.train_function`), synchronised after
every call.

Two references sit beside the configs (docs/results/performance.md, "Performance in CI"):
- `reference_step`: a hand-written minimal XLA step (plain tapes, the loss written out, no hooks,
  trackers or distribution) on the first config's own networks, timed in the same rounds;
- `compiled_convolutions`: how many convolutions XLA's optimized HLO of a config's step holds,
  the pass count a step cannot go below on hardware where convolutions dominate.
`tfadvgan.training.benchmark_gates` puts them together into the gates CI runs after the tests.
"""

import cProfile
import inspect
import os
import pstats
import re
import time

import gin
import numpy as np
import tensorflow as tf

from tfadvgan import config
from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan import storage
from tfadvgan import models
from tfadvgan.training import engine as engine_lib
from tfadvgan.training import run as run_lib


def _sync(outputs):
  logs, _ = outputs
  return {k: float(np.asarray(v)) for k, v in logs.items()}


def _caller(gan, iterator):
  """One compiled call of one train step, as training makes it."""
  engine = engine_lib.for_gan(gan)
  one, zero, no = tf.constant(1), tf.constant(0), tf.constant(False)
  return lambda: engine.train_function(iterator, one, zero, no)


# The D loss on real logits, on fake logits and the G loss, written out (not `losses.get`), so that
# the reference shares nothing with the framework but the networks.
_REFERENCE_LOSSES = {
    "non_saturating": (lambda t: tf.nn.softplus(-t), tf.nn.softplus, lambda t: tf.nn.softplus(-t)),
    "hinge": (lambda t: tf.nn.relu(1.0 - t), lambda t: tf.nn.relu(1.0 + t), lambda t: -t),
    "wasserstein": (lambda t: -t, lambda t: t, lambda t: -t),
}


def reference_step(gan):
  """A hand-written minimal train step on `gan`'s generator and discriminator.

  `n_dis` D updates on (reals, G(z)) and one G update, each one plain `tf.GradientTape` with the
  loss written out, on copies of the GAN's optimizers (same class and settings), XLA-compiled
  whole. What the framework adds on top (hooks, trackers, gradient norms, loss scaling, the
  strategy's replica machinery) is what `ratio` against it measures. Only the configs such a
  step can reproduce are accepted: the unconditional baseline (`build_gan.method = 'gan'`)
  with a non-saturating, hinge or Wasserstein loss, no penalty, clip or EMA, float32, one device.

  Returns:
    `step(batch) -> (d_loss, g_loss)`, a `tf.function(jit_compile=True)` taking the batches of
    `tfadvgan.data.make_train_dataset`.
  """
  name = gan.loss_fn.name
  errors.check(gan.method_name == "gan" and not gan.conditional,
               "The hand-written reference step is the unconditional baseline's: give a "
               f"baseline config first (this one is method {gan.method_name!r}).")
  errors.check(name in _REFERENCE_LOSSES,
               f"The hand-written reference step has no {name!r} loss: use one of "
               f"{', '.join(sorted(_REFERENCE_LOSSES))}.")
  errors.check(gan.penalty_fn is None and gan.clip_value is None and gan.generator_ema is None
               and gan.mixed_precision == "none"
               and gan.distribute_strategy.num_replicas_in_sync == 1,
               "The hand-written reference step has no penalty, weight clipping, EMA, mixed "
               "precision or replicas: benchmark a config without them.")
  d_real, d_fake, g_loss_fn = _REFERENCE_LOSSES[name]
  gen, disc = gan.generator, gan.discriminator
  copies = []
  for optimizer, network in ((gan.d_optimizer, disc), (gan.g_optimizer, gen)):
    copy = optimizer.__class__.from_config(optimizer.get_config())
    copy.build(network.trainable_variables)
    copies.append(copy)
  d_opt, g_opt = copies
  logits = lambda x: disc(x, None, training=True)["logits"]  # noqa: E731

  @tf.function(jit_compile=True, autograph=False)
  def step(batch):
    d_loss = tf.zeros([])
    for k in range(gan.n_dis):
      fake = tf.stop_gradient(gen(batch["z_d"][:, k], None, training=True))
      with tf.GradientTape() as tape:
        d_loss = (tf.reduce_mean(d_real(logits(batch["images"][:, k])))
                  + tf.reduce_mean(d_fake(logits(fake))))
      d_opt.apply_gradients(zip(tape.gradient(d_loss, disc.trainable_variables),
                                disc.trainable_variables))
    with tf.GradientTape() as tape:
      g_loss = tf.reduce_mean(g_loss_fn(logits(gen(batch["z_g"], None, training=True))))
    g_opt.apply_gradients(zip(tape.gradient(g_loss, gen.trainable_variables),
                              gen.trainable_variables))
    return d_loss, g_loss
  return step


def compiled_convolutions(gan, batch):
  """Convolutions in the optimized HLO of `gan`'s whole train step under XLA (one device).

  Counted after XLA's optimisations, so a pass XLA shares between two computations (common
  subexpression elimination) counts once. A forward or backward pass through a conv net is one
  convolution per layer (the input-gradient pass of the first layer only when it is needed), so
  the ratio of two counts is the pass-count ratio of the two steps.
  """
  errors.check(gan.distribute_strategy.num_replicas_in_sync == 1,
               "compiled_convolutions compiles the one-device step: use the default strategy.")
  compiled = tf.function(gan.train_step, jit_compile=True, autograph=False)
  hlo = compiled.experimental_get_compiler_ir(batch)(stage="optimized_hlo")
  return len(re.findall(r"\bconvolution\(", hlo))


def configured_mixed_precision():
  """`train.mixed_precision` as bound in gin, else `train`'s default (what training would use)."""
  try:
    value = gin.query_parameter("train.mixed_precision")
  except ValueError:
    value = inspect.signature(run_lib.train).parameters["mixed_precision"].default
  return models.check_mixed_precision(value)


def prepare(config_files, params, shape=None, batch_size=None, strategy="default"):
  """Builds one config's GAN and a cached distributed batch iterator.

  Returns:
    (gan, call, b): `call()` runs one compiled train step on the next batch.
  """
  gin.clear_config()
  config.parse_gin(config_files, params)
  strategy_obj = distribute.make_strategy(strategy)
  b = batch_size or gin.query_parameter("train.batch_size")
  try:
    source = data_lib.load()
  except errors.ConfigError:
    errors.check(shape is not None, "The config's dataset is not available here: pass "
                 "--shape=H,W,C to benchmark on random data of that shape.")
    n = 4 * b * 8
    images = np.random.default_rng(0).uniform(-1, 1, (n,) + tuple(shape)).astype(np.float32)
    labels = np.arange(n) % 10
    source = data_lib.from_arrays(images, labels)
  gan = run_lib.build_gan(source.shape, source.num_classes, strategy=strategy_obj,
                          mixed_precision=configured_mixed_precision(), batch_size=b)
  ds = data_lib.make_train_dataset(source, batch_size=b, n_dis=gan.n_dis,
                                   latent_dim=gan.generator.latent_dim,
                                   conditional=gan.conditional, seed=0)
  ds = ds.take(1).cache().repeat()
  iterator = iter(strategy_obj.experimental_distribute_dataset(ds))
  return gan, _caller(gan, iterator), b, ds


def run(configs, steps=50, warmup=5, chunk=5, shape=None, batch_size=None, strategy="default",
        reference=False, convolutions=False):
  """Times each config. `configs` is a list of (name, [gin files], [gin params]).

  `reference` adds a last row, the hand-written `reference_step` on the first config's networks
  and batch, timed in the same rounds. `convolutions` adds each config's `compiled_convolutions`
  (one device, XLA).

  Returns:
    A list of dicts with name, median/min/max ms per step, images/s, ratio_to_first, and the
    settings (batch size, n_dis, jit, replicas).
  """
  errors.check(steps >= 1 and warmup >= 1 and chunk >= 1,
               "--steps, --warmup and --chunk must be >= 1 (warm-up includes compilation).")
  built = []  # dicts: name, gan, call, b, times (+ convolutions)
  for name, files, params in configs:
    gan, call, b, ds = prepare(files, params, shape, batch_size, strategy)
    for _ in range(warmup):
      _sync(call())
    row = dict(name=name, gan=gan, call=call, b=b, ds=ds, times=[], jit=bool(gan.jit_compile))
    if convolutions:
      row["convolutions"] = compiled_convolutions(gan, next(iter(ds)))
    built.append(row)
  if reference:
    first = built[0]
    step, batches = reference_step(first["gan"]), iter(first["ds"])
    call = lambda: ({"d_loss": step(next(batches))[0]}, None)  # noqa: E731
    for _ in range(warmup):
      _sync(call())
    built.append(dict(first, name=f"reference (hand-written): {first['name']}", call=call,
                      times=[], jit=True))
    built[-1].pop("convolutions", None)
  remaining = steps
  while remaining > 0:
    n = min(chunk, remaining)
    for row in built:
      row["times"] += _timed_calls(row["call"], n)
    remaining -= n
  results = []
  for row in built:
    gan, b, ms = row["gan"], row["b"], 1000.0 * np.asarray(row["times"])
    # Each train step reads n_dis * batch real images.
    results.append({
        "name": row["name"], "median_ms_per_step": float(np.median(ms)), "min_ms_per_step":
        float(ms.min()), "max_ms_per_step": float(ms.max()), "steps": len(ms),
        "images_per_sec": float(b * gan.n_dis * 1000.0 / np.median(ms)),
        "batch_size": int(b), "n_dis": int(gan.n_dis), "jit_compile": row["jit"],
        "replicas": int(gan.distribute_strategy.num_replicas_in_sync),
        "method": gan.method_name, "mixed_precision": gan.mixed_precision})
    if "convolutions" in row:
      results[-1]["convolutions"] = int(row["convolutions"])
  first = results[0]["median_ms_per_step"]
  for r in results:
    r["ratio_to_first"] = r["median_ms_per_step"] / first
  return results


def end_to_end(config_files, params, steps=50, warmup=10, chunk=5, model_dir=None,
               input_pipeline="real", profile=False, rounds=1):
  """ms per step of real training: `run.train` with the config's input pipeline and callbacks.

  Trains `warmup + steps` steps (logging every `chunk`) into `model_dir` (a temporary directory by
  default, deleted afterwards) and returns the median of the `perf/ms_per_step` windows after the
  first `warmup` steps (each window is the wall time between two log points divided by its steps,
  so the input pipeline, the host loop and every callback firing inside it count).

  Two measurement knobs find where the difference to the isolated step goes:
  - `input_pipeline="cached"` trains on the pipeline's first batch repeated (as the isolated step
    does) instead of the real pipeline, so its ratio to the real one is the pipeline's cost;
  - `profile=True` runs the whole training under cProfile and adds what the host does per step
    outside the compiled calls: `profile_host_ms_per_step` (callbacks, reading the logs, the loop)
    and `profile_callbacks_ms_per_step` (its callback part), with `profile_compiled_s` (the
    compiled calls, compilation included). cProfile slows Python calls, so these are upper
    bounds; take the timing from an unprofiled run.

  `rounds` > 1 measures against the isolated step in the same stretch of time, since this
  machine's speed drifts by more than the effect between one minute and the next: it builds the
  isolated step first (`prepare`), then alternates `steps` timed isolated calls with training
  continued (resumed from its last checkpoint, so each round recompiles: its first `warmup` steps
  are not counted) for `warmup + steps` steps.

  Returns:
    dict: `end_to_end_ms_per_step` (median), `end_to_end_windows` (how many), and the profile's
    keys when `profile`; with `rounds` > 1 also `isolated_ms_per_step` (median of the
    interleaved isolated calls), `end_to_end_ratio` and `end_to_end_round_ratios`.
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  _check_end_to_end(steps, warmup, chunk, input_pipeline, rounds, profile)
  isolated = _isolated_call(config_files, params, warmup) if rounds > 1 else None
  owned = model_dir is None  # a local scratch directory (tempfile), removed through gfile
  model_dir = model_dir or tempfile.mkdtemp(prefix="tfadvgan_e2e_")
  real_dataset = data_lib.make_train_dataset
  if input_pipeline == "cached":  # measurement only: the first batch, repeated
    data_lib.make_train_dataset = first_batch_repeated(real_dataset)
  profiler = cProfile.Profile() if profile else None
  windows, isolated_times, round_ratios = [], [], []
  try:
    for r in range(rounds):
      round_times = _timed_calls(isolated, steps) if isolated else []
      isolated_times += round_times
      these = _train_round(config_files, params, model_dir, r * (warmup + steps), warmup, steps,
                           chunk, profiler)
      windows += these
      if round_times:
        round_ratios.append(float(np.median(these) / (1000.0 * np.median(round_times))))
  finally:
    data_lib.make_train_dataset = real_dataset
    if owned and storage.exists(model_dir):
      storage.rmtree(model_dir)
  out = {"end_to_end_ms_per_step": float(np.median(windows)), "end_to_end_windows": len(windows)}
  if isolated:
    iso = 1000.0 * float(np.median(isolated_times))
    out.update(isolated_ms_per_step=iso, end_to_end_ratio=out["end_to_end_ms_per_step"] / iso,
               end_to_end_round_ratios=round_ratios)
  if profiler:
    out.update(_loop_split(profiler, warmup + steps))
  return out


def _check_end_to_end(steps, warmup, chunk, input_pipeline, rounds, profile):
  errors.check(steps >= chunk and warmup >= chunk and chunk >= 1,
               "end_to_end needs --steps and --warmup of at least --chunk (>= 1).")
  errors.check(input_pipeline in ("real", "cached"),
               f"end_to_end input_pipeline must be 'real' or 'cached', got {input_pipeline!r}.")
  errors.check(isinstance(rounds, int) and rounds >= 1 and not (profile and rounds > 1),
               "end_to_end rounds must be an integer >= 1, and 1 with the profile.")


def _isolated_call(config_files, params, warmup):
  """The config's isolated compiled step (`prepare`), warmed up by `warmup` calls."""
  _, isolated, _, _ = prepare(config_files, params)
  for _ in range(warmup):
    _sync(isolated())
  return isolated


def _timed_calls(call, n):
  """Seconds of each of `n` calls of `call`, each synchronised (its logs read)."""
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    _sync(call())
    times.append(time.perf_counter() - t0)
  return times


def _train_round(config_files, params, model_dir, start, warmup, steps, chunk, profiler):
  """Trains `model_dir` from step `start` to `start + warmup + steps` (resumed; under `profiler`
  when given), logging every `chunk` steps. Returns the `perf/ms_per_step` windows after the
  round's first `warmup` steps."""
  end = start + warmup + steps
  gin.clear_config()
  config.parse_gin(config_files, list(params) + [
      f"train.num_steps = {end}", f"train.log_every_steps = {chunk}", "train.verbose = 0"])
  if profiler:
    profiler.runcall(run_lib.train, model_dir)
  else:
    run_lib.train(model_dir)
  these = [value for step, value in storage.read_scalars(storage.join(model_dir, "train"),
                                                    "perf/ms_per_step")
           if start + warmup < step <= end]
  errors.check(these, "end_to_end: training logged no timing window after the warm-up.")
  return these


def first_batch_repeated(make_dataset):
  """`make_dataset`, changed to return its first element repeated, as the isolated step reads."""
  def cached(*args, **kwargs):
    return make_dataset(*args, **kwargs).take(1).cache().repeat()
  return cached


def _loop_split(profiler, steps):
  """The host's share of the engine's loop (`Engine._loop`), from cProfile: the seconds of its
  compiled calls (tracing and compilation included), and the milliseconds per step of everything
  else it does (callbacks, reading the logs, the loop itself)."""
  engine_py = os.path.join("training", "engine.py")
  compiled = host = callbacks = 0.0
  for (path, _, name), (_, _, own, _, callers) in pstats.Stats(profiler).stats.items():
    if path.endswith(engine_py) and name == "_loop":
      host += own
    for (caller_path, _, caller), edge in callers.items():
      if not (caller_path.endswith(engine_py) and caller == "_loop"):
        continue
      if name == "error_handler":  # the compiled train function's call, as TF wraps it
        compiled += edge[3]
      else:
        host += edge[3]
        if name.startswith("on_train_batch"):
          callbacks += edge[3]
  return {"profile_compiled_s": compiled, "profile_host_ms_per_step": 1000.0 * host / steps,
          "profile_callbacks_ms_per_step": 1000.0 * callbacks / steps}
