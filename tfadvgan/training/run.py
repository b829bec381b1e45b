"""`train()`: the gin-configured training run, driven by `tfadvgan.training.engine` (a loop over
`strategy.run`, not Keras `fit`), and `build_gan()`, which eval, sampling and benchmarking use to
rebuild the same model (`restore_run`).

A run, in the order `train` reads:
  the knobs checked, the strategy made;
  `run_dir.RunDir`: the run directory's lease (the workers' agreement, the chief's lease);
  the data loaded, the GAN built, the evaluation started (before anything is written);
  `RunDir.open_checkpoints`: the directory checked against the run, the latest checkpoint
    restored, run.json written;
  `run_callbacks.assemble`: the callbacks, sharing the engine's `engine.RunState`;
  `stopping.StopRequests` around `engine.fit`: signals, the time budget, the cluster's requests;
  `stopping.run_engine`: then the exit handling (finished, stopped early, diverged).
The directory's layout: `tfadvgan.training.run_dir`.
"""

import inspect
import os
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
from tfadvgan.metrics import evaluation  # noqa: F401  (registers make_eval_fn for train.eval_fn)
from tfadvgan import models
from tfadvgan import optimizers
from tfadvgan.training import best as best_lib
from tfadvgan.training import checkpoints
from tfadvgan.training import cluster
from tfadvgan.training import engine as engine_lib
from tfadvgan.training import run_callbacks
from tfadvgan.training import run_dir as run_dir_lib
from tfadvgan.training import stopping


# `train`'s documented error (Raises), defined where the run's end is handled.
TrainingDiverged = stopping.TrainingDiverged
DEFAULT_BATCH_SIZE = 64  # `train.batch_size` when gin binds none


def run_batch_size():
  """The run's global batch size: `train.batch_size` as gin binds it, else its default."""
  try:
    return gin.query_parameter("train.batch_size")
  except ValueError:
    return DEFAULT_BATCH_SIZE


def _build_optimizers():
  with gin.config_scope("D"):
    d_opt = optimizers.make_optimizer()
  with gin.config_scope("G"):
    g_opt = optimizers.make_optimizer()
  return d_opt, g_opt


@gin.configurable("build_gan", denylist=["shape", "num_classes", "strategy", "mixed_precision",
                                         "batch_size"])
def build_gan(shape, num_classes, strategy=None, method="gan", latent_dim=100, conditional=None,
              jit_compile=None, steps_per_execution=None, run_eagerly=False,
              mixed_precision="none", batch_size=None):
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
    batch_size: the run's global batch size, for a method whose state is made per batch
      (Fast-RobGAN's perturbation) when gin binds none of its own; None: `run_batch_size()`.
  """
  models.check_mixed_precision(mixed_precision, "build_gan mixed_precision")
  strategy = strategy or tf.distribute.get_strategy()
  method_cls = gans.get(method)
  if conditional is None:
    conditional = method_cls.conditional_default
  if conditional:
    errors.require_labels(num_classes > 0, method)
  jit = False if run_eagerly else distribute.resolve_jit_compile(strategy, jit_compile)
  if steps_per_execution is None:
    steps_per_execution = distribute.default_steps_per_execution(strategy)
  steps_per_execution = errors.check_int("build_gan.steps_per_execution", steps_per_execution,
                                         low=1)
  make_generator, generator, discriminator = _build_networks(
      strategy, method_cls, shape, latent_dim, num_classes if conditional else 0, mixed_precision)
  jit = _step_jit(jit, jit_compile, strategy, generator, discriminator)
  with strategy.scope():
    gan = method_cls(generator=generator, discriminator=discriminator, conditional=conditional,
                     generator_factory=make_generator, **_method_batch_size(method_cls, batch_size))
    # How G and D were built (read by benchmarks and users, like `gan.conditional`): a property of
    # the model, not of a run; a plain string, which Keras does not track.
    gan.mixed_precision = mixed_precision
    d_opt, g_opt = _build_optimizers()
    if mixed_precision == "float16":
      d_opt, g_opt = optimizers.loss_scaled(d_opt), optimizers.loss_scaled(g_opt)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, jit_compile=jit,
                steps_per_execution=steps_per_execution, run_eagerly=run_eagerly)
  return gan


def _method_batch_size(method_cls, batch_size):
  """{"batch_size": the run's global batch} for a method that takes one (Fast-RobGAN), unless gin
  binds the method's own to a value (a run's operative config may hold `batch_size = None`)."""
  takes = "batch_size" in inspect.signature(method_cls.__init__).parameters
  if not takes or gin.get_bindings(method_cls).get("batch_size") is not None:
    return {}
  return {"batch_size": run_batch_size() if batch_size is None else batch_size}


def _build_networks(strategy, method_cls, shape, latent_dim, classes, mixed_precision):
  """(make_generator, G, D), built under `strategy`'s scope with the `mixed_precision` policy."""
  with strategy.scope():
    def make_generator():
      return models.build_generator(output_shape=tuple(shape), latent_dim=latent_dim,
                                    num_classes=classes)
    with models.dtype_policy(mixed_precision):
      generator = make_generator()
      discriminator = models.build_discriminator(input_shape=tuple(shape), num_classes=classes,
                                                 **_method_head(method_cls))
  return make_generator, generator, discriminator


def _step_jit(jit, jit_compile, strategy, generator, discriminator):
  """`jit`, off for synchronized BN under per-replica XLA, which cannot compile its all-reduce
  inside the forward pass (a ConfigError when build_gan.jit_compile = True asked for XLA)."""
  if not (jit and engine_lib.per_replica_xla(strategy)
          and _has_synchronized_bn(generator, discriminator)):
    return jit
  errors.check(jit_compile in (None, "auto"),
               "build_gan.jit_compile = True cannot be combined with synchronized batch norm "
               "under a Mirrored / MultiWorker strategy (its all-reduce sits inside the forward "
               "pass that XLA compiles per replica): leave build_gan.jit_compile unset (XLA "
               "then stays off) or set build_generator/build_discriminator.synchronized_bn = "
               "False.")
  return False


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


def check_clip(gan, source):
  """Every method's `clip` clips attacked inputs to the [-1, 1] image range, which would silently
  squash the 2-D mixtures (the ring has radius 2, the grid reaches 4): a ConfigError there."""
  errors.check(source.name not in data_lib.MODE_STD or not getattr(gan, "clip", False),
               f"{type(gan).__name__}.clip = True clips attacked samples to the [-1, 1] image "
               f"range, which the {source.name!r} data exceed: set {type(gan).__name__}.clip = "
               "False.")


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


def _process_eval_fn(chief, eval_every_steps, eval_fn, model_dir, source, fell_back,
                     best_metric, best_mode):
  """This process's eval_fn: the chief's from `start_evaluation`; another worker keeps the one
  given (it takes part in the best checkpoint's saves only), or None after the ring fallback (as
  the chief decides: the fallback is the same on every worker)."""
  if chief:
    return start_evaluation(eval_every_steps, eval_fn, model_dir, source, fell_back, best_metric,
                            best_mode)
  return None if eval_every_steps and fell_back else eval_fn


def _check_knobs(num_steps, batch_size, log_every_steps, checkpoint_every_steps,
                 sample_every_steps, max_seconds, mixed_precision, eval_every_steps, best_metric,
                 best_mode):
  """ConfigError for the first bad `train` knob; returns the six step counts as ints."""
  counts = [errors.check_int(f"train.{name}", value, low=1) for name, value in (
      ("num_steps", num_steps), ("batch_size", batch_size), ("log_every_steps", log_every_steps),
      ("checkpoint_every_steps", checkpoint_every_steps),
      ("sample_every_steps", sample_every_steps))]
  errors.check(max_seconds is None or (isinstance(max_seconds, (int, float)) and max_seconds > 0),
               f"train.max_seconds must be a number > 0 or None; got {max_seconds!r}.")
  models.check_mixed_precision(mixed_precision)
  counts.append(errors.check_int("train.eval_every_steps", eval_every_steps, low=0))
  errors.check(best_metric is None or (isinstance(best_metric, str) and best_metric),
               f"train.best_metric must be a metric name (e.g. 'fid') or None; got "
               f"{best_metric!r}.")
  errors.check(best_mode in best_lib.MODES, f"train.best_mode must be one of "
               f"{', '.join(best_lib.MODES)}; got {best_mode!r}.")
  return counts


@gin.configurable(denylist=["model_dir"])
def train(model_dir,
          num_steps=1000,
          batch_size=DEFAULT_BATCH_SIZE,
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
  # Over ~60 lines with its Args only (the `train.*` gin reference); the body reads on a screen.
  (num_steps, batch_size, log_every_steps, checkpoint_every_steps, sample_every_steps,
   eval_every_steps) = _check_knobs(num_steps, batch_size, log_every_steps,
                                    checkpoint_every_steps, sample_every_steps, max_seconds,
                                    mixed_precision, eval_every_steps, best_metric, best_mode)
  keras.utils.set_random_seed(seed)
  strategy_obj = distribute.make_strategy(strategy, tpu=tpu)
  distribute.per_replica_batch(strategy_obj, batch_size)
  with run_dir_lib.RunDir(model_dir, strategy_obj) as run_dir:
    source, fell_back = load_source(fallback_to_ring, with_fallback=True)
    check_batch_fits(source, batch_size)
    gan = build_gan(source.shape, source.num_classes, strategy=strategy_obj,
                    mixed_precision=mixed_precision, batch_size=batch_size)
    check_clip(gan, source)
    eval_fn = _process_eval_fn(run_dir.chief, eval_every_steps, eval_fn, model_dir, source,
                               fell_back, best_metric, best_mode)
    start = run_dir.open_checkpoints(gan, source, keep_checkpoints)
    if start >= num_steps:
      if run_dir.chief:
        logging.info(f"{model_dir} is already at step {start} >= train.num_steps={num_steps}.")
      gan.stopped_early = None
      return gan
    state = engine_lib.for_gan(gan).state
    stops = stopping.StopRequests(gan, state, max_seconds)
    cbs = run_callbacks.assemble(
        gan, state, run_dir, stops, source, eval_fn=eval_fn, fell_back=fell_back,
        num_steps=num_steps, batch_size=batch_size, seed=seed, log_every_steps=log_every_steps,
        checkpoint_every_steps=checkpoint_every_steps, sample_every_steps=sample_every_steps,
        eval_every_steps=eval_every_steps, best_metric=best_metric, best_mode=best_mode,
        diagnose_every_steps=diagnose_every_steps, diagnose_epsilon=diagnose_epsilon,
        diagnose_attack_success=diagnose_attack_success, verbose=verbose)
    dataset_fn = _dataset_fn(gan, source, batch_size, seed, start)
    # The run's one output beside the weights (README, "Running on a pod / cluster"): set once.
    gan.stopped_early = stopping.run_engine(gan, run_dir, cbs, stops, dataset_fn,
                                            num_steps - start, reset_every=log_every_steps)
    return gan


def _dataset_fn(gan, source, batch_size, seed, start):
  """The per-input-context training pipeline. A resumed run continues with a new data order and
  new noise (seeded by seed and the step), not a replay of the batches it already saw."""
  data_seed = seed if start == 0 else seed * 1_000_003 + start

  def dataset_fn(input_context):
    return data_lib.make_train_dataset(
        source, batch_size=batch_size, n_dis=gan.n_dis, latent_dim=gan.generator.latent_dim,
        conditional=gan.conditional, seed=data_seed, input_context=input_context)
  return dataset_fn


def restore_run(model_dir, step=None):
  """Rebuilds a run's GAN from its saved config and restores a checkpoint: the latest, or `step`
  (a step number or 'best': `checkpoints.resolve_checkpoint`).

  Returns:
    (gan, info, checkpoint_path), with `info` the run's run.json.
  """
  info = run_dir_lib.read_run_info(model_dir)
  config_path = os.path.join(model_dir, checkpoints.OPERATIVE_FILE)
  gin.clear_config()
  try:
    gin.parse_config_file(config_path)
  except (ValueError, KeyError, SyntaxError, IOError) as e:
    raise errors.ConfigError(f"Could not parse {config_path}: {e}") from None
  gan = build_gan(info["shape"], info["num_classes"])
  manager = checkpoints.make_manager(gan, model_dir)
  path = checkpoints.resolve_checkpoint(model_dir, step)
  path = checkpoints.restore(manager, path)
  errors.check(path is not None, f"No checkpoint in {model_dir}/checkpoints to restore.")
  return gan, info, path
