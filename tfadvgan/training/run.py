"""`train()`: the gin-configured training run, driven by `tfadvgan.training.engine` (a loop over
`strategy.run`, not Keras `fit`), and `build_gan()`, which eval, sampling and benchmarking use to
rebuild the same model.

A run directory holds:
  checkpoints/    tf.train.CheckpointManager files (G, D, EMA G, both optimizers, step, method state)
  checkpoints/best/   the best checkpoint by an eval metric, when training evaluates
  eval/results.json   in-training (and scripts/eval.py) evaluation results
  operative_config.gin, config.gin   the gin config (a resume with a different one fails)
  run.json        data shape, classes, latent size, method: enough to rebuild G without the data
  train/          TensorBoard events;  samples/  PNG grids from a fixed z

Multi-worker: only the chief writes these; every worker takes part in checkpointing (the others
into a temporary directory that is deleted after each save) and restores from the chief's.
"""

import json
import os
import signal
import threading
import time

import gin
import keras
import tensorflow as tf
from absl import logging

from tfadvgan import config
from tfadvgan import data as data_lib
from tfadvgan import distribute
from tfadvgan import errors
from tfadvgan import gans
from tfadvgan import io
from tfadvgan.metrics import evaluation  # noqa: F401  (registers make_eval_fn for train.eval_fn)
from tfadvgan import models
from tfadvgan import rng
from tfadvgan.training import best as best_lib
from tfadvgan.training import callbacks as callbacks_lib
from tfadvgan.training import checkpoints
from tfadvgan.training import cluster
from tfadvgan.training import engine as engine_lib
from tfadvgan import optimizers

RUN_FILE = "run.json"


class TrainingDiverged(errors.ConfigError):
  """A non-finite loss stopped training."""


def _build_optimizers():
  with gin.config_scope("D"):
    d_opt = optimizers.make_optimizer()
  with gin.config_scope("G"):
    g_opt = optimizers.make_optimizer()
  return d_opt, g_opt


@gin.configurable("build_gan", denylist=["shape", "num_classes", "strategy", "mixed_precision"])
def build_gan(shape, num_classes, strategy=None, method="gan", latent_dim=100, conditional=None,
              jit_compile=None, steps_per_execution=None, run_eagerly=False,
              mixed_precision="none"):
  """Builds and compiles G, D and the method's GAN under `strategy`'s scope.

  Args:
    shape: data shape (H, W, C) or (2,).
    num_classes: the dataset's class count (0 if unlabelled).
    strategy: a tf.distribute strategy (default: the current one).
    method: name in `tfadvgan.gans.METHODS`.
    latent_dim: size of z.
    conditional: feed labels to G and D; None means the method's default.
    jit_compile: XLA for the train step; None means on (`distribute.default_jit_compile`):
      the whole step on one device and TPU, each replica's gradient computations under
      Mirrored / MultiWorker (off there when G or D uses synchronized BN).
    steps_per_execution: train steps per compiled call; None means
      `distribute.default_steps_per_execution` (1, or 100 under TPUStrategy, where the host loop
      is what Keras recommends amortising). Intervals then fire at the first multiple of it at or
      after the configured step.
    run_eagerly: run the train step eagerly (debugging; slow). Turns XLA off.
    mixed_precision: 'none', 'bfloat16' or 'float16' (`train.mixed_precision`; eval and sampling
      leave it at 'none': float32 models restore any run's checkpoint). G and D are built with
      that Keras policy (the EMA copy, used only for sampling, stays float32); with 'float16'
      both optimizers are wrapped in `optimizers.LossScaleOptimizer`.
  """
  models.check_mixed_precision(mixed_precision, "build_gan mixed_precision")
  strategy = strategy or tf.distribute.get_strategy()
  method_cls = gans.get(method)
  if conditional is None:
    conditional = method_cls.conditional_default
  if conditional:
    errors.require_labels(num_classes > 0, method)
  classes = num_classes if conditional else 0
  jit = False if run_eagerly else distribute.resolve_jit_compile(strategy, jit_compile)
  if steps_per_execution is None:
    steps_per_execution = distribute.default_steps_per_execution(strategy)
  steps_per_execution = errors.check_int("build_gan.steps_per_execution", steps_per_execution,
                                         low=1)
  with strategy.scope():
    def make_generator():
      return models.build_generator(output_shape=tuple(shape), latent_dim=latent_dim,
                                    num_classes=classes)
    with models.dtype_policy(mixed_precision):
      generator = make_generator()
      discriminator = models.build_discriminator(input_shape=tuple(shape), num_classes=classes,
                                                 **_method_head(method_cls))
  if jit and engine_lib.per_replica_xla(strategy) and _has_synchronized_bn(generator,
                                                                           discriminator):
    # Synchronized BN all-reduces inside the forward pass, which per-replica XLA cannot compile.
    errors.check(jit_compile in (None, "auto"),
                 "build_gan.jit_compile = True cannot be combined with synchronized batch norm "
                 "under a Mirrored / MultiWorker strategy (its all-reduce sits inside the forward "
                 "pass that XLA compiles per replica): leave build_gan.jit_compile unset (XLA "
                 "then stays off) or set build_generator/build_discriminator.synchronized_bn = "
                 "False.")
    jit = False
  with strategy.scope():
    gan = method_cls(generator=generator, discriminator=discriminator, conditional=conditional,
                     generator_factory=make_generator)
    gan.mixed_precision = mixed_precision
    d_opt, g_opt = _build_optimizers()
    if mixed_precision == "float16":
      d_opt, g_opt = optimizers.loss_scaled(d_opt), optimizers.loss_scaled(g_opt)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, jit_compile=jit,
                steps_per_execution=steps_per_execution, run_eagerly=run_eagerly)
  return gan


def _method_head(method_cls):
  """{"head": the method's discriminator head} (the AC methods: 'ac'), unless gin binds
  build_discriminator.head, which then wins (a wrong one is refused by the method)."""
  head = method_cls.discriminator_head
  if head is None or "head" in gin.get_bindings(models.build_discriminator):
    return {}
  return {"head": head}


def _has_synchronized_bn(*networks):
  return any(isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized
             for network in networks for layer in network._flatten_layers())  # pylint: disable=protected-access


def write_run_info(model_dir, source, gan, method):
  info = {"shape": list(source.shape), "num_classes": int(source.num_classes),
          "dataset": source.name, "method": method, "latent_dim": int(gan.generator.latent_dim),
          "conditional": bool(gan.conditional)}
  io.atomic_write(io.join(model_dir, RUN_FILE), json.dumps(info, indent=2))


def check_batch_fits(source, batch_size):
  """ConfigError when one batch is larger than the whole dataset (every batch would repeat
  examples), where the example count is known without reading the data."""
  count = source.num_examples
  if count is None:
    cardinality = int(source.images.cardinality())
    count = cardinality if cardinality >= 0 else None
  errors.check(count is None or batch_size <= count,
               f"train.batch_size = {batch_size} is larger than the {count} examples of "
               f"{source.name}: every batch would repeat examples. Set train.batch_size <= "
               f"{count}, or train on more data.")


def check_same_data(model_dir, source):
  """ConfigError when `model_dir` holds a run trained on data of another shape or class count
  (the data changed between two runs of one run dir), naming both."""
  if not io.exists(io.join(model_dir, RUN_FILE)):
    return
  info = read_run_info(model_dir)
  saved = (tuple(info.get("shape", ())), int(info.get("num_classes", 0)))
  now = (tuple(source.shape), int(source.num_classes))
  errors.check(saved == now,
               f"The data changed since {model_dir} was trained: it holds a run on "
               f"{info.get('dataset')} of shape {saved[0]} with {saved[1]} classes, and the data "
               f"loaded now ({source.name}) has shape {now[0]} with {now[1]} classes. Pass the "
               "run's data (dataset.* in its operative_config.gin), or use a new --model_dir.")


def read_run_info(model_dir):
  path = io.join(model_dir, RUN_FILE)
  errors.check(io.exists(path),
               f"{model_dir} is not a tfadvgan run directory (no {RUN_FILE}); pass the "
               "--model_dir that train.py wrote.")
  try:
    return json.loads(io.read(path))
  except ValueError as e:
    raise errors.ConfigError(f"{path} is corrupt ({e}); fix or delete it.") from None


def load_source(fallback_to_ring, with_fallback=False):
  """The configured dataset; `fallback_to_ring`: see `tfadvgan.data.load_with_ring_fallback`.

  Returns:
    The source, or `(source, fell_back)` with `with_fallback`.
  """
  source, fell_back = data_lib.load_with_ring_fallback(fallback_to_ring)
  if fell_back:
    with gin.unlock_config():
      gin.bind_parameter("build_generator.arch", "mlp")
      gin.bind_parameter("build_discriminator.arch", "mlp")
      # The demo's AS-GAN clips its attacked reals to the image range, which the ring exceeds.
      gin.bind_parameter("ASGAN.clip", False)
  return (source, fell_back) if with_fallback else source


def start_evaluation(eval_every_steps, eval_fn, model_dir, source, fell_back, best_metric,
                     best_mode):
  """The chief's eval_fn at start-up, before anything is written (None: no evaluation).

  `train.eval_every_steps` alone evaluates with `make_eval_fn`'s bindings; its classifier loads
  here, so that one that cannot load stops the run before it starts. The demo's ring fallback
  drops the evaluation (FID/IS need images).
  """
  if not eval_every_steps:
    return None
  builtin = eval_fn is None or hasattr(eval_fn, "bind")
  if builtin and len(source.shape) != 3:
    if fell_back:
      logging.warning("the ring has no images: the demo skips its FID/IS evaluation.")
      return None
    raise errors.ConfigError(
        f"train.eval_every_steps: in-training FID/IS needs images, and {source.name} has points "
        f"of shape {tuple(source.shape)}. Set train.eval_every_steps = 0 (scripts/diagnose.py "
        "--which=modes measures mode coverage).")
  if eval_fn is None:
    eval_fn = evaluation.make_eval_fn()
  if builtin:
    eval_fn.bind(model_dir, tuple(source.shape))
    if best_metric is not None:
      best_lib.check_metric(best_metric, best_mode, eval_fn.result_names(source.num_classes))
  return eval_fn


def _run_summary(gan, writer, source):
  """The RunSummary callback: operative config, 64 real images (image data), non-default bindings."""
  first = next(iter(data_lib.make_eval_dataset(source, 64)))
  return callbacks_lib.RunSummary(gan, writer, gin.operative_config_str(), real=first["images"],
                                  hparams=config.non_default_bindings())


@gin.configurable(denylist=["model_dir"])
def train(model_dir,
          num_steps=1000,
          batch_size=config.DEFAULT_BATCH_SIZE,
          seed=0,
          log_every_steps=100,
          checkpoint_every_steps=1000,
          sample_every_steps=1000,
          eval_every_steps=0,
          eval_fn=None,
          best_metric="fid",
          best_mode="auto",
          diagnose_every_steps=1000,
          diagnose_epsilon=1.0 / 255,
          diagnose_attack_success=None,
          keep_checkpoints=5,
          strategy="default",
          tpu=None,
          fallback_to_ring=False,
          max_seconds=None,
          mixed_precision="none",
          verbose=1):
  """Trains (or resumes) the configured GAN in `model_dir`.

  Args:
    model_dir: run directory (created; resumed from if it holds checkpoints).
    num_steps: total train steps (G updates), counting steps done before a resume.
    batch_size: global batch size of each D and G update.
    seed: seeds the data order, the noise and the in-step randomness.
    log_every_steps, checkpoint_every_steps, sample_every_steps, eval_every_steps: intervals
      in train steps (0 disables eval).
    eval_fn: `eval_fn(gan, step) -> {name: value}`, called every `eval_every_steps` on the
      chief. None: `tfadvgan.metrics.evaluation.make_eval_fn` with its gin bindings (the run's
      model_dir, the default classifier for the data), loaded before training starts.
    best_metric: keep the checkpoint with the best value of this eval result in
      `checkpoints/best/` (`tfadvgan.training.best`; 'fid', 'is', 'kid' stand for the
      classifier's key, e.g. 'fid_fmnist_cnn'). None: keep none.
    best_mode: 'auto' (FID/KID lower, IS and precision/recall higher), 'min' or 'max'.
    diagnose_every_steps: interval of the batch diagnostics on a fixed real batch (TensorBoard
      `diag/*`; 0 disables them).
    diagnose_epsilon: FGSM budget of those diagnostics ([-1, 1] scale).
    diagnose_attack_success: also log DAT's xi_fake / xi_real there (None: only for DAT).
    keep_checkpoints: how many checkpoints the manager keeps.
    strategy, tpu: see `tfadvgan.distribute.make_strategy`.
    fallback_to_ring: train on the 2-D ring when the demo's default data is absent and the user set
      nothing about the dataset (`tfadvgan.data.load_with_ring_fallback`; demo only).
    max_seconds: None, or a wall-time budget in seconds for this invocation (compilation
      included): training stops after the first step that ends past it and checkpoints there.
      For comparisons at equal wall time; `num_steps` still caps the run.
    mixed_precision: 'none', 'bfloat16' or 'float16': G and D compute in 16 bits with float32
      variables (Keras mixed-precision policies); 'float16' adds dynamic loss scaling. Logits,
      losses, penalties and attacks stay float32; checkpoints hold float32 weights. Part of the
      training config: a resume with another value is refused.
    verbose: Keras progress bar (1), one line per epoch (2) or silent (0).

  Returns:
    The trained GAN. `gan.stopped_early` is None when the run reached `num_steps`, else a
    `cluster.StoppedEarly` (a signal, `max_seconds`, a dead peer): the run holds a checkpoint and
    the same call continues it (scripts/train.py exits with `cluster.EXIT_RERUN` then).

  Raises:
    ConfigError: bad input; another process holds the run directory's lease
      (`lease.Lease`); the workers of a cluster were started with different configs.
    TrainingDiverged: a non-finite loss (a ConfigError).
  """
  for name, value in (("num_steps", num_steps), ("batch_size", batch_size),
                      ("log_every_steps", log_every_steps),
                      ("checkpoint_every_steps", checkpoint_every_steps),
                      ("sample_every_steps", sample_every_steps)):
    errors.check(isinstance(value, int) and value >= 1,
                 f"train.{name} must be an integer >= 1; got {value!r}.")
  errors.check(max_seconds is None or (isinstance(max_seconds, (int, float)) and max_seconds > 0),
               f"train.max_seconds must be a number > 0 or None; got {max_seconds!r}.")
  models.check_mixed_precision(mixed_precision)
  errors.check(isinstance(eval_every_steps, int) and eval_every_steps >= 0,
               f"train.eval_every_steps must be an integer >= 0; got {eval_every_steps!r}.")
  errors.check(best_metric is None or (isinstance(best_metric, str) and best_metric),
               f"train.best_metric must be a metric name (e.g. 'fid') or None; got "
               f"{best_metric!r}.")
  errors.check(best_mode in best_lib.MODES, f"train.best_mode must be one of "
               f"{', '.join(best_lib.MODES)}; got {best_mode!r}.")
  keras.utils.set_random_seed(seed)
  strategy_obj = distribute.make_strategy(strategy, tpu=tpu)
  distribute.per_replica_batch(strategy_obj, batch_size)
  chief = engine_lib.is_chief(strategy_obj)

  lease = cluster.start(strategy_obj, model_dir, chief)
  try:
    source, fell_back = load_source(fallback_to_ring, with_fallback=True)
    check_batch_fits(source, batch_size)
    gan = build_gan(source.shape, source.num_classes, strategy=strategy_obj,
                    mixed_precision=mixed_precision)
    gan.stopped_early = None  # a `cluster.StoppedEarly` when training stops before num_steps
    # Every method's `clip` clips attacked inputs to the [-1, 1] image range, which would silently
    # squash the 2-D mixtures (the ring has radius 2, the grid reaches 4).
    errors.check(source.name not in data_lib.MODE_STD or not getattr(gan, "clip", False),
                 f"{type(gan).__name__}.clip = True clips attacked samples to the [-1, 1] image "
                 f"range, which the {source.name!r} data exceed: set {type(gan).__name__}.clip = "
                 "False.")
    if chief:
      eval_fn = start_evaluation(eval_every_steps, eval_fn, model_dir, source, fell_back,
                                 best_metric, best_mode)
    elif eval_every_steps and fell_back:
      eval_fn = None  # as the chief decides (the fallback is the same on every worker)
    if chief:
      io.makedirs(model_dir)

    with strategy_obj.scope():
      manager = checkpoints.make_manager(gan, model_dir, max_to_keep=keep_checkpoints)
    if chief:  # before the restore, whose shape mismatch would read as a corrupt checkpoint
      check_same_data(model_dir, source)
      checkpoints.check_and_save_config(model_dir,
                                        resuming=manager.latest_checkpoint is not None)
    resumed_from = checkpoints.restore(manager)
    temp_dir = None
    if not chief:  # TF's multi-worker pattern: save into a per-worker directory, then delete it
      temp_dir = os.path.join(model_dir, f"worker_{engine_lib.task_id(strategy_obj)}_tmp_ckpt")
      with strategy_obj.scope():
        manager = checkpoints.Manager(manager.checkpoint, temp_dir, max_to_keep=1)
    if chief:
      write_run_info(model_dir, source, gan, gan.method_name)
    start = int(gan.global_step.numpy())
    if resumed_from and chief:
      logging.info(f"resumed from {resumed_from} at step {start}")
    if start >= num_steps:
      if chief:
        logging.info(f"{model_dir} is already at step {start} >= train.num_steps={num_steps}.")
      return gan

    # A resumed run continues with a new data order and new noise (seeded by seed and the step), not
    # a replay of the batches it already saw.
    data_seed = seed if start == 0 else seed * 1_000_003 + start

    def dataset_fn(input_context):
      return data_lib.make_train_dataset(
          source, batch_size=batch_size, n_dis=gan.n_dis, latent_dim=gan.generator.latent_dim,
          conditional=gan.conditional, seed=data_seed, input_context=input_context)

    guard = callbacks_lib.NanGuard(gan)
    checkpointer = callbacks_lib.Checkpointer(gan, manager, checkpoint_every_steps, guard,
                                              temp_dir=temp_dir)
    cbs = [guard, checkpointer]
    evaluating = bool(eval_every_steps) and (eval_fn is not None or not (chief or fell_back))
    keeper = None
    if evaluating and best_metric is not None:  # every worker takes part in its saves
      with strategy_obj.scope():
        keeper = best_lib.BestCheckpoint(manager.checkpoint, model_dir, best_metric, best_mode,
                                         temp_dir=temp_dir and temp_dir + "_best")
    periodic_eval = None
    if evaluating and (chief or keeper is not None):
      periodic_eval = callbacks_lib.PeriodicEval(gan, None, eval_every_steps,
                                                 eval_fn if chief else None, best=keeper)
      cbs.append(periodic_eval)
    if lease is not None:  # stop (without writing more) if another process took the lease over
      cbs.insert(0, callbacks_lib.LeaseWatch(gan, lease))
    grid = None
    if chief:  # only the chief writes summaries, samples, eval results and diagnostics
      writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
      grid = callbacks_lib.SampleGrid(gan, writer, sample_every_steps,
                                      os.path.join(model_dir, "samples"),
                                      seed=seed + rng.SAMPLE_GRID_OFFSET, guard=guard)
      cbs += [callbacks_lib.Summaries(gan, writer, log_every_steps, batch_size), grid,
              _run_summary(gan, writer, source)]
      if periodic_eval is not None:
        periodic_eval.writer = writer
      if diagnose_every_steps:
        first = next(iter(data_lib.make_eval_dataset(source, 64)))
        if diagnose_attack_success is None:
          diagnose_attack_success = gan.targeted_attack
        cbs.append(callbacks_lib.Diagnostics(
            gan, writer, diagnose_every_steps, first["images"],
            first.get("labels") if gan.conditional else None, epsilon=diagnose_epsilon,
            attack_success=diagnose_attack_success))
      if verbose:
        cbs.append(callbacks_lib.Progress(gan, log_every_steps, num_steps))

    budget = None
    if max_seconds is not None:
      budget = callbacks_lib.TimeBudget(gan, max_seconds)
      cbs.insert(1, budget)  # before the Checkpointer: it saves at the end of training
    # The first Ctrl-C or SIGTERM (what preemptible VMs send) asks the run to stop after the current
    # step (checkpointed by the Checkpointer at the end of training; under multi-worker every worker
    # stops at the same step); a second Ctrl-C raises KeyboardInterrupt as usual.
    stop = callbacks_lib.StopRequest(gan)
    cbs.insert(0, stop)
    previous = {}
    if threading.current_thread() is threading.main_thread():
      def on_signal(signum, frame):
        del frame
        stop.request()
        signal.signal(signum, previous[signum])
      for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)

    def interrupted():
      path = checkpointer.save()
      step = int(gan.global_step.numpy())
      if chief:
        logging.info(f"interrupted at step {step}; saved {path or 'nothing (weights not finite)'}."
                     " Run the same command to resume.")
      gan.stopped_early = cluster.StoppedEarly("interrupted", step,
                                               cluster.latest_checkpoint(model_dir))
      return gan

    t0 = time.time()
    try:
      engine_lib.fit(gan, dataset_fn, num_steps - start, callbacks=cbs,
                     stop_requested=lambda: stop.requested, reset_every=log_every_steps)
    except KeyboardInterrupt:
      return interrupted()
    except cluster.PEER_ERRORS as e:  # a worker died: its peers' collectives fail
      if engine_lib.num_workers(strategy_obj) < 2:
        raise
      gan.stopped_early = cluster.report_unreachable_peer(e, strategy_obj, model_dir,
                                                          int(gan.global_step.numpy()))
      return gan
    finally:
      for signum, handler in previous.items():
        signal.signal(signum, handler)
    if stop.requested and guard.bad is None:
      return interrupted()
    if getattr(gan, "stop_requested_by_cluster", False) and guard.bad is None and not (
        budget is not None and budget.stopped_at is not None):
      return interrupted()
    if guard.bad is not None:
      step, key, value = guard.bad
      raise TrainingDiverged(
          f"Training diverged: {key} = {value} at step {step}. The last good checkpoint "
          f"({manager.latest_checkpoint or 'none'}) is kept. Lower the learning rates "
          "(make_optimizer.learning_rate), add a penalty or spectral norm, or change the seed.")
    if budget is not None and budget.stopped_at is not None:
      gan.stopped_early = cluster.StoppedEarly("max_seconds", budget.stopped_at,
                                               cluster.latest_checkpoint(model_dir))
      if chief:
        logging.info(f"wall-time budget train.max_seconds={max_seconds} reached at step "
                     f"{budget.stopped_at}; checkpoint saved. Run the same command to continue.")
    if chief:
      logging.info("trained %d steps in %.1fs", int(gan.global_step.numpy()) - start,
                   time.time() - t0)
      logging.info(f"done: step {int(gan.global_step.numpy())} in {model_dir}\n"
            f"  checkpoint   {manager.latest_checkpoint}\n"
            + (f"  samples      {grid.last_path}\n" if grid is not None and grid.last_path else "")
            + (periodic_eval.summary(model_dir) if periodic_eval is not None else "")
            + f"  tensorboard  tensorboard --logdir={model_dir}")
    return gan
  finally:
    if lease is not None:
      lease.release()


def restore_run(model_dir, step=None):
  """Rebuilds a run's GAN from its saved config and restores a checkpoint: the latest, or `step`
  (a step number or 'best': `checkpoints.resolve_checkpoint`).

  Returns:
    (gan, info, checkpoint_path), with `info` the run's run.json.
  """
  info = read_run_info(model_dir)
  config = os.path.join(model_dir, checkpoints.OPERATIVE_FILE)
  gin.clear_config()
  try:
    gin.parse_config_file(config)
  except (ValueError, KeyError, SyntaxError, IOError) as e:
    raise errors.ConfigError(f"Could not parse {config}: {e}") from None
  gan = build_gan(info["shape"], info["num_classes"])
  manager = checkpoints.make_manager(gan, model_dir)
  path = checkpoints.resolve_checkpoint(model_dir, step)
  path = checkpoints.restore(manager, path)
  errors.check(path is not None, f"No checkpoint in {model_dir}/checkpoints to restore.")
  return gan, info, path


DATA_HINT = ("Point at the data with --gin_param, e.g. --gin_param \"dataset.path = "
             "'/path/to/data'\" (local sources), --gin_param \"dataset.data_dir = '/path/to/tfds'\" "
             "(TFDS) or --gin_param \"dataset.source = '...'\".")


def load_run_source(info, split, use_run_source=True):
  """A trained run's dataset (its `dataset.*` gin config) for `split`, checked against run.json.

  Args:
    info: the run's run.json (`loop.read_run_info`).
    split: data split to load.
    use_run_source: for 2-D toy runs, load the source run.json names (the one actually trained on,
      also after a ring fallback) instead of the configured one.

  Raises:
    ConfigError: the data cannot be loaded (with DATA_HINT), or its shape differs from the run's.
  """
  kwargs = {}
  if use_run_source and len(info["shape"]) == 1 and info.get("dataset") in data_lib.SOURCES:
    kwargs["source"] = info["dataset"]
  try:
    source = data_lib.load(split=split, **kwargs)
  except errors.ConfigError as e:
    raise errors.ConfigError(f"Could not load the run's data (split {split!r}): {e}\n"
                             f"{DATA_HINT}") from None
  except Exception as e:  # pylint: disable=broad-except  (missing TFDS data, no binding, ...)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise errors.ConfigError(f"Could not load the run's data (split {split!r}): "
                             f"{type(e).__name__}: {first}\n{DATA_HINT}") from None
  errors.check(list(source.shape) == list(info["shape"]),
               f"The data loaded ({source.name}, shape {tuple(source.shape)}) does not match the "
               f"run's shape {tuple(info['shape'])}. {DATA_HINT}")
  return source
