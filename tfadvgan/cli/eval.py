r"""Evaluates a run's checkpoints: FID, IS, KID (and on request precision / recall, density /
coverage, per-class FID) against the run's own dataset.

  python scripts/eval.py --model_dir=DIR [--step=N|best | --all | --continuous] \
      [--timeout_secs=3600] \
      --classifier=inception_hub|inception_local|keras_inception_v3|domain \
      [--classifier_path=...] [--num_samples=50000] [--reference_split=train|test] \
      [--metrics=fid,is,kid,precision_recall,density_coverage,per_class_fid] \
      [--cache_dir=...] [--seed=0] [--gin_param=...]

Which checkpoints: the latest by default; `--step=N` that one (`--step=best`: the best one kept
by in-training evaluation, `checkpoints/best/`); `--all` every kept checkpoint that
results.json does not hold yet (for this classifier, num_samples and split); `--continuous` waits
for new checkpoints (`tf.train.checkpoints_iterator`, so one written while an evaluation runs may
be skipped if a newer one follows) and stops when the run reaches train.num_steps or no new
checkpoint arrives within --timeout_secs: evaluation alongside training.

Samples come from the run's sampler (the EMA generator when the run has one). The real data is
the run's dataset (the `dataset.*` bindings of its operative_config.gin); `--gin_param` /
`--gin_file` are applied on top (e.g. `--gin_param="dataset.path = '/data/fmnist'"`) after the
model is rebuilt, so they can change data, classifier and metric settings, not the model. Results
are appended to DIR/eval/results.json and TensorBoard (DIR/eval), and printed as a table.

--model_dir, --step and --seed are the flags of scripts/sample.py (the sample generator is shared).
"""

import os
import re
import shlex
import time

from absl import flags

from tfadvgan.cli import common
from tfadvgan.cli import sample as sample_cli  # Defines --model_dir, --step, --seed.

flags.DEFINE_bool("all", False, "Evaluate every kept checkpoint not yet in results.json.")
flags.DEFINE_bool("continuous", False, "Evaluate new checkpoints as training writes them.")
flags.DEFINE_integer("timeout_secs", 3600, "--continuous: stop after this long without a new "
                     "checkpoint.")
flags.DEFINE_string("classifier", "inception_hub", "Feature extractor for FID/IS/KID: "
                    "inception_hub, inception_local, keras_inception_v3 or domain.")
flags.DEFINE_string("classifier_path", None, "Inception SavedModel / .tar.gz, Keras InceptionV3 "
                    "weights, or domain classifier .keras file (default: none; needed by every "
                    "--classifier but inception_hub).")
flags.DEFINE_integer("num_samples", 50000, "Generated samples (real: up to as many).")
flags.DEFINE_string("reference_split", "train", "Split of the run's dataset to compare with.")
flags.DEFINE_list("metrics", ["fid", "is", "kid"], "Metrics: any of fid, is, kid, "
                  "precision_recall, density_coverage, per_class_fid (class-conditional runs).")
flags.DEFINE_string("cache_dir", None, "Reference activation cache (default "
                    "$TFADVGAN_CACHE_DIR/reference or ~/.cache/tfadvgan/reference).")
flags.DEFINE_integer("batch_size", 256, "Generator batch size.")
common.define_gin_flags()
for _name in ("model_dir", "step", "seed"):  # sample.py's flags that eval uses: in its --help
  flags.declare_key_flag(_name)
FLAGS = flags.FLAGS

# Flags of scripts/sample.py that mean nothing here.
_SAMPLE_ONLY = {"num": "--num_samples", "out": None, "label": None, "per_grid": None,
                "truncation": None, "interpolate": None, "interpolation_steps": None,
                "interpolation": None, "class_sheet": None, "per_class": None}


def _step_of(path):
  match = re.search(r"ckpt-(\d+)$", path)
  return int(match.group(1)) if match else None


def _kept_checkpoints(model_dir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(storage.join(model_dir, "checkpoints"))
  paths = list(state.all_model_checkpoint_paths) if state else []
  return sorted(((_step_of(p), p) for p in paths if _step_of(p) is not None))


def _target_steps(model_dir):
  """train.num_steps of the run's saved config (re-read: a resumed run may extend it)."""
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import checkpoints  # pylint: disable=g-import-not-at-top
  try:
    text = storage.read(storage.join(model_dir, checkpoints.OPERATIVE_FILE))
    return int(checkpoints.parse_bindings(text).get("train.num_steps", "0"))
  except (OSError, ValueError):
    return None


def _wait_for_run(model_dir, timeout):
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import checkpoints  # pylint: disable=g-import-not-at-top
  deadline = time.time() + timeout
  while not storage.exists(storage.join(model_dir, checkpoints.OPERATIVE_FILE)):
    if time.time() > deadline:
      return
    time.sleep(2)


def _apply_overrides():
  import gin  # pylint: disable=g-import-not-at-top
  with gin.unlock_config():
    common.parse_gin(FLAGS.gin_file, FLAGS.gin_param, finalize=False)


def _parse_run_config(model_dir):
  """Clears gin, parses the run's operative config, then --gin_file / --gin_param."""
  import gin  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import checkpoints  # pylint: disable=g-import-not-at-top
  # The run module registers build_gan, train and the models the operative config binds.
  from tfadvgan.training import run  # pylint: disable=g-import-not-at-top,unused-import
  gin.clear_config()
  common.parse_gin([storage.join(model_dir, checkpoints.OPERATIVE_FILE)], [], finalize=False)
  _apply_overrides()


def _format(value):
  if value is None or value != value:  # None / NaN
    return "nan"
  return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"


class _Table:
  """Prints one row per evaluated checkpoint (header first)."""

  def __init__(self, names):
    self.names = names
    self.widths = [max(len(n), 10) for n in names]
    self.started = False

  def row(self, step, checkpoint, results):
    if not self.started:
      print(f"{'step':>8}  {'checkpoint':<12}  "
            + "  ".join(f"{n:>{w}}" for n, w in zip(self.names, self.widths)))
      self.started = True
    print(f"{step:>8}  {checkpoint:<12}  "
          + "  ".join(f"{_format(results.get(n)):>{w}}" for n, w in zip(self.names, self.widths)),
          flush=True)


_PASSED_ON = ("step", "all", "continuous", "num_samples", "reference_split", "metrics", "seed")


def _shipped_classifier_path():
  """classifiers/fmnist_cnn.keras of this checkout, relative to the cwd when below it."""
  from tfadvgan.metrics import classifiers  # pylint: disable=g-import-not-at-top
  path = classifiers.shipped_classifier_path()
  if not os.path.exists(path):
    return None
  rel = os.path.relpath(path)
  return rel if not rel.startswith("..") else path


def domain_classifier_hint(model_dir):
  """For a Fashion-MNIST-like run (28/32 px grayscale): the exact eval command with the shipped
  domain classifier, else ''."""
  import sys  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run_dir  # pylint: disable=g-import-not-at-top
  try:
    info = run_dir.read_run_info(model_dir)
  except Exception:  # pylint: disable=broad-except
    return ""
  shape = list(info.get("shape", []))
  if shape not in ([28, 28, 1], [32, 32, 1]):
    return ""
  path = _shipped_classifier_path()
  if path is None:
    return ""
  try:
    data_path = str(gin.query_parameter("dataset.path") or "")
  except (ValueError, KeyError):
    data_path = ""
  fashion = "fashion" in f"{info.get('dataset', '')} {data_path}".lower().replace("_", "-")
  script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "scripts/eval.py"
  if not os.path.relpath(script).startswith(".."):
    script = os.path.relpath(script)
  words = ["python", script, f"--model_dir={model_dir}", "--classifier=domain",
           f"--classifier_path={path}"]
  for name in _PASSED_ON:  # the user's other eval flags, unchanged
    if FLAGS[name].present:
      value = FLAGS[name].value
      words.append(f"--{name}" if value is True else f"--no{name}" if value is False else
                   f"--{name}={','.join(value) if isinstance(value, list) else value}")
  command = " ".join(shlex.quote(w) for w in words)
  if fashion:
    return (f"This run is Fashion-MNIST: evaluate it offline with the shipped domain classifier: "
            f"{command}")
  return (f"This run's data is 28/32 px grayscale: the shipped domain classifier (trained on "
          f"Fashion-MNIST) works offline: {command} (for other data, train one with "
          f"scripts/train_classifier.py).")


def _check_flags(argv):
  """The flags' one-line errors; returns the checked --metrics."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import metric_names  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  for name, instead in _SAMPLE_ONLY.items():
    errors.check(not FLAGS[name].present, f"--{name} is a sample.py flag"
                 + (f"; use {instead}." if instead else " and does not apply to eval."))
  modes = [m for m, on in (("--step", FLAGS.step is not None), ("--all", FLAGS.all),
                           ("--continuous", FLAGS.continuous)) if on]
  errors.check(len(modes) <= 1, f"Use at most one of --step, --all, --continuous; got "
               f"{', '.join(modes)}.")
  errors.check(FLAGS.num_samples >= 2, f"--num_samples must be >= 2, got {FLAGS.num_samples}.")
  errors.check(not FLAGS.continuous or FLAGS.timeout_secs > 0, "--timeout_secs must be > 0.")
  return metric_names.check_metrics(FLAGS.metrics)


def _classifier(model_dir):
  """--classifier, or one ConfigError with the shipped domain classifier's command as a hint."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import classifiers  # pylint: disable=g-import-not-at-top
  try:
    return classifiers.get_classifier(FLAGS.classifier, path=FLAGS.classifier_path)
  except errors.ConfigError as e:
    hint = domain_classifier_hint(model_dir) if FLAGS.classifier != "domain" else ""
    raise errors.ConfigError(f"{e} {hint}".strip()) from None


def _reference(metrics):
  """(source, cache-key fields, n_reference) of --reference_split; all None for IS alone."""
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  split = FLAGS.reference_split
  if not evaluation.needs_reference(metrics):
    return None, None, None
  try:
    source = data_lib.load(split=split)
  except errors.ConfigError as e:
    raise errors.ConfigError(
        f"Reference data ({split!r} split of the run's dataset) is unavailable: {e} Point to "
        "it with --gin_param=\"dataset.path = '...'\" or choose --reference_split.") from None
  fields = evaluation.reference_fields(
      source, split, evaluation.classifier_fingerprint(FLAGS.classifier, FLAGS.classifier_path))
  n_reference = evaluation.reference_size(source, FLAGS.num_samples)
  if n_reference < FLAGS.num_samples:
    print(f"note: the {split!r} split has {n_reference} examples; the reference uses all of "
          f"them for {FLAGS.num_samples} samples.")
  return source, fields, n_reference


class _Evaluator:
  """Restores checkpoints of one run (the model once, then only weights), evaluates each, appends
  the results to results.json and prints a table row."""

  def __init__(self, model_dir, classifier, metrics, num_classes, reference):
    from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
    self.model_dir, self.classifier, self.metrics = model_dir, classifier, metrics
    self.source, self.fields, n_reference = reference
    self.n_reference = n_reference
    self.extra = dict(reference_split=FLAGS.reference_split, n_reference=n_reference)
    self.names = evaluation.result_names(classifier.name, metrics, num_classes)
    self.cache_dir = FLAGS.cache_dir or evaluation.default_cache_dir()
    # One column per metric; the per-class FIDs only in results.json.
    self.table = _Table([n for n in self.names if not re.search(r"_class_\d+$", n)])
    self.gan, self.manager = None, None

  def _restore(self, step, path):
    from tfadvgan.training import checkpoints, run as run_lib  # pylint: disable=g-import-not-at-top
    if self.gan is None:
      self.gan, _, restored = run_lib.restore_run(self.model_dir, step)
      _apply_overrides()  # restore_run re-parsed the run's config alone.
      self.manager = checkpoints.make_manager(self.gan, self.model_dir)
      return restored
    return checkpoints.restore(self.manager, path)

  def run_one(self, step, path):
    """Evaluates checkpoint ``path`` (of ``step``); returns the restored step."""
    from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
    from tfadvgan.training import checkpoints  # pylint: disable=g-import-not-at-top
    restored = self._restore(step, path)
    step = int(self.gan.global_step.numpy())
    results = evaluation.evaluate(
        self.gan, self.classifier, self.source, self.fields, num_samples=FLAGS.num_samples,
        cache_dir=self.cache_dir, metrics=self.metrics, batch_size=FLAGS.batch_size,
        seed=FLAGS.seed, num_reference=self.n_reference)
    name = os.path.basename(restored)
    if os.path.basename(os.path.dirname(restored)) == checkpoints.BEST_DIR:
      name = f"{checkpoints.BEST_DIR}/{name}"
    evaluation.append_results(self.model_dir, step, results, self.classifier.name,
                              FLAGS.num_samples, checkpoint=name, extra=self.extra)
    self.table.row(step, name, results)
    return step

  def done(self):
    """The steps results.json already holds (this classifier, num_samples and reference)."""
    from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
    return set(evaluation.evaluated_steps(self.model_dir, self.classifier.name,
                                          FLAGS.num_samples, self.names, self.extra))


def _continuous(evaluator):
  """Evaluates new checkpoints as they arrive, until train.num_steps or --timeout_secs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  evaluated = []
  directory = os.path.join(evaluator.model_dir, "checkpoints")
  print(f"waiting for checkpoints in {directory} (timeout {FLAGS.timeout_secs}s)", flush=True)
  for path in tf.train.checkpoints_iterator(directory, timeout=FLAGS.timeout_secs):
    step = _step_of(path)
    if step is not None and step not in evaluator.done():
      try:
        evaluated.append(evaluator.run_one(step, path))
      except errors.ConfigError as e:  # e.g. deleted by the manager's max_to_keep meanwhile.
        print(f"warning: skipped {path}: {e}", flush=True)
        continue
    target = _target_steps(evaluator.model_dir)
    if step is not None and target and step >= target:
      break
  return evaluated


def _all_kept(evaluator, kept):
  """Evaluates every kept checkpoint results.json does not hold yet."""
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  already = evaluator.done()
  todo = [(s, p) for s, p in kept if s not in already]
  if not todo:
    print(f"Every kept checkpoint ({', '.join(f'ckpt-{s}' for s, _ in kept)}) is already in "
          f"{evaluation.results_path(evaluator.model_dir)}.")
  return [evaluator.run_one(step, path) for step, path in todo]


def _num_classes(info, metrics):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  num_classes = int(info.get("num_classes", 0)) if info.get("conditional") else 0
  errors.check("per_class_fid" not in metrics or num_classes, "--metrics=per_class_fid needs a "
               "class-conditional run; this run is unconditional.")
  return num_classes


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import checkpoints, run_dir  # pylint: disable=g-import-not-at-top
  metrics = _check_flags(argv)
  model_dir = FLAGS.model_dir
  if FLAGS.continuous:
    _wait_for_run(model_dir, FLAGS.timeout_secs)
  info = run_dir.read_run_info(model_dir)  # A clear error if this is not a run directory.
  num_classes = _num_classes(info, metrics)
  _parse_run_config(model_dir)
  kept = _kept_checkpoints(model_dir)
  if not FLAGS.continuous:
    errors.check(kept, f"No checkpoints in {os.path.join(model_dir, 'checkpoints')}; train the "
                 "run first (or use --continuous to wait for them).")
  if FLAGS.step is not None:
    checkpoints.resolve_checkpoint(model_dir, FLAGS.step)  # Lists the kept steps if missing.
  classifier = _classifier(model_dir)
  evaluator = _Evaluator(model_dir, classifier, metrics, num_classes, _reference(metrics))
  if FLAGS.continuous:
    evaluated = _continuous(evaluator)
  elif FLAGS.all:
    evaluated = _all_kept(evaluator, kept)
  else:
    step = FLAGS.step if FLAGS.step is not None else kept[-1][0]
    evaluated = [evaluator.run_one(step, checkpoints.resolve_checkpoint(model_dir, step))]
  if not evaluated:
    print("no new checkpoint evaluated.")
  else:
    common.print_outputs(
        f"evaluated {len(evaluated)} checkpoint(s) with {classifier.name!r} on "
        f"{FLAGS.num_samples} samples",
        [("results", evaluation.results_path(model_dir)),
         ("TensorBoard", f"tensorboard --logdir {model_dir}")])


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
