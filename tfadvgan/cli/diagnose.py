r"""Robustness and gradient diagnostics of a trained run's discriminator.

  python scripts/diagnose.py --model_dir=DIR [--step=N|best] [--split=test] [--num=1000] \
      [--epsilons=0,0.00196,0.00392,0.00784,0.01569] [--out=DIR/diagnostics] \
      [--which=accuracy,pgd_accuracy,class_pgd,dat,gradients,confidence,wdist,modes,generalization]

Restores the run (`run.restore_run`), loads `--num` real examples of `--split` through the run's
own gin config (`dataset.*` from its operative_config.gin, then `--gin_file` and `--gin_param`:
`--gin_param "dataset.path = '...'"` points at moved data), draws as many fakes from the run's
sampler (EMA G when enabled), runs the chosen diagnostics (`tfadvgan.metrics.diagnostics.suite`;
`tfadvgan.metrics.diagnostics` documents every definition), prints their headline numbers and
writes `diagnostics_step<N>.json` plus, for `gradients` on image data, `gradient_grid_step<N>.png` (AS-GAN Fig. 2),
`gradient_inputs_step<N>.png` (the matching real images) and `gradient_histogram_step<N>.png` (bar
heights log(1 + count); the counts are in the JSON).

Epsilons are L-inf distances on the [-1, 1] image scale (1/255 = 0.00392 is half an 8-bit level).
`class_pgd` (Rob-GAN Table 1) needs an auxiliary-classifier head; by default it runs only on such
runs. `--classifier_path=X.keras` adds the same attack on a classifier from train_classifier.py
(e.g. the Madry baseline) on the same images, as `class_pgd_classifier`.

`modes` (the 2-D ring and grid only, and there by default) counts the modes covered and the
fraction of high-quality samples of `--mode_samples` fakes (`tfadvgan.metrics.mode_coverage`:
VEEGAN / PacGAN definitions) and saves those samples as `mode_samples_step<N>.npz` (keys
`samples`, `centres`, `std`) for plots. `generalization` (on request only; an AC head or
`--classifier_path`) is Rob-GAN Fig. 1: the local Lipschitz value ||grad_x CE||_2 and the accuracy
under the `class_pgd` attack on `--num` train reals and on `--num` reals of `--split`, and their
gaps.

The discriminator runs in inference mode unless `--training_mode` (Keras then updates BN moving
statistics and spectral-norm kernels in memory on every call; nothing is saved).
"""

import dataclasses

from absl import flags

from tfadvgan.cli import common

# The suite's diagnostics (tfadvgan.metrics.diagnostics.suite.WHICH: --help must not import it).
WHICH = ("accuracy", "pgd_accuracy", "class_pgd", "dat", "gradients", "confidence", "wdist",
         "modes", "generalization")

flags.DEFINE_string("model_dir", None, "Run directory written by train.py (required).")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best' (the best checkpoint kept by "
                    "in-training evaluation); default: latest.")
flags.DEFINE_string("split", None, "Data split of the real examples (default: 'test' when the "
                    "dataset has one, else 'train').")
flags.DEFINE_integer("num", 1000, "Number of real (and of fake) examples.")
flags.DEFINE_string("epsilons", "0,0.00196078,0.00392157,0.00784314,0.01568627",
                    "L-inf budgets on the [-1, 1] scale for accuracy / pgd_accuracy.")
flags.DEFINE_string("class_epsilons", "0,0.02,0.04,0.08",
                    "L-inf budgets for class_pgd (Rob-GAN Table 1, [-1, 1] scale).")
flags.DEFINE_string("which", None, "Comma-separated diagnostics from: " + ", ".join(WHICH)
                    + " (default: all; class_pgd only for AC-head runs).")
flags.DEFINE_string("out", None, "Output directory (default MODEL_DIR/diagnostics).")
flags.DEFINE_integer("batch_size", 100, "Batch size.")
flags.DEFINE_integer("seed", 0, "Seed of the fakes' noise.")
flags.DEFINE_integer("pgd_steps", 10, "PGD steps for pgd_accuracy (step 2.5 * eps / steps).")
flags.DEFINE_integer("class_pgd_steps", 20, "PGD steps for class_pgd (step eps / 5).")
flags.DEFINE_string("classifier_path", None, "With class_pgd: also attack this classifier (a "
                    ".keras file from scripts/train_classifier.py, e.g. the --adversarial Madry "
                    "baseline) on the same images with the same PGD, for a side-by-side table "
                    "(default: none).")
flags.DEFINE_float("confidence_epsilon", 1.0 / 255, "FGSM budget for confidence.")
flags.DEFINE_float("dat_tolerance", 0.02, "DAT Eq. 1 success tolerance.")
flags.DEFINE_integer("dat_max_iters", 100, "DAT attack steps cap.")
flags.DEFINE_float("dat_step_size", 1.0 / 255, "DAT targeted step size ([-1, 1] scale).")
flags.DEFINE_enum("dat_value", "logit", ["logit", "probability", "loss"],
                  "What D means in DAT Eq. 1: raw logit, sigmoid, or g1/g2 of the run's loss.")
flags.DEFINE_integer("bins", 50, "Gradient histogram bins.")
flags.DEFINE_integer("grid_num", 64, "Images in the gradient grid.")
flags.DEFINE_integer("mode_samples", 2500, "Fakes drawn for `modes` (VEEGAN and PacGAN: 2500).")
flags.DEFINE_float("mode_num_std", 3.0, "`modes`: a sample is high quality within this many stds.")
flags.DEFINE_integer("mode_min_count", 1, "`modes`: high-quality samples a covered mode needs.")
flags.DEFINE_bool("training_mode", False, "Run the discriminator in training mode.")
common.define_gin_flags()  # applied after the run's config, e.g. "dataset.path = '/data/x.npz'"
FLAGS = flags.FLAGS


def _floats(text, name):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  try:
    values = [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise errors.ConfigError(f"--{name} must be comma-separated numbers; got {text!r}.") from None
  errors.check(values and all(v >= 0 for v in values),
               f"--{name} must list numbers >= 0; got {text!r}.")
  return values


def _which(text, has_ac_head, head, has_classifier=False, dataset=None):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics.diagnostics import suite  # pylint: disable=g-import-not-at-top
  if text is None:
    return suite.default_which(has_ac_head, has_classifier, dataset)
  chosen = [w.strip() for w in text.split(",") if w.strip()]
  errors.check(chosen, "--which is empty.")
  for w in chosen:
    errors.choose("diagnostic (--which)", w, {k: k for k in WHICH})
  errors.check("modes" not in chosen or dataset in suite.MIXTURES,
               f"--which=modes needs a run on a 2-D mixture ({', '.join(suite.MIXTURES)}); this "
               f"run's dataset is {dataset!r}. Drop modes from --which.")
  for w in suite.NEEDS_CLASSES:
    errors.check(w not in chosen or has_ac_head or has_classifier,
                 f"--which={w} needs a discriminator with an auxiliary-classifier head "
                 f"(build_discriminator.head = 'ac', as in Rob-GAN runs) or --classifier_path; "
                 f"this run's head is {head!r}. Drop {w} from --which.")
  return chosen


def _binds_source():
  """True when --gin_param or --gin_file binds dataset.source (the run's own source is not used)."""
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  texts = list(FLAGS.gin_param) + [storage.read(path) for path in FLAGS.gin_file]
  return any("dataset.source" in text for text in texts)


def load_real(info, split, num, split_given):
  """``num`` real examples of the run's dataset: (images [n, ...] float32, labels [n] or None)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run_dir  # pylint: disable=g-import-not-at-top
  use_run_source = not _binds_source()
  try:
    source = run_dir.load_run_source(info, split, use_run_source)
  except errors.ConfigError as e:
    if split_given or "Unknown split" not in str(e):
      raise
    logging.info("dataset has no %r split; using 'train'.", split)
    split = "train"
    source = run_dir.load_run_source(info, split, use_run_source)
  xs, ys = [], []
  for batch in source.images.take(num).batch(256):
    if source.num_classes > 0:
      xs.append(batch[0].numpy())
      ys.append(batch[1].numpy())
    else:
      xs.append(batch.numpy())
  errors.check(xs, f"The run's dataset has no examples in split {split!r}.")
  images = np.concatenate(xs).astype(np.float32)
  labels = np.concatenate(ys).astype(np.int32) if ys else None
  return images, labels, split, source.name


def _jsonable(value):
  import math  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  if isinstance(value, dict):
    return {(format(k, ".8g") if isinstance(k, float) else str(k)): _jsonable(v)
            for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return _jsonable(value.tolist())
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _settings(which):
  """The suite's settings from the flags (class budgets and mode samples checked when used)."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics.diagnostics import suite  # pylint: disable=g-import-not-at-top
  class_epsilons = suite.Settings.class_epsilons
  if any(w in which for w in suite.NEEDS_CLASSES):
    class_epsilons = tuple(_floats(FLAGS.class_epsilons, "class_epsilons"))
  if "modes" in which:
    errors.check(FLAGS.mode_samples >= 1,
                 f"--mode_samples must be >= 1; got {FLAGS.mode_samples}.")
  given = {f.name: FLAGS[f.name].value for f in dataclasses.fields(suite.Settings)
           if f.name not in ("epsilons", "class_epsilons")}
  return suite.Settings(epsilons=tuple(_floats(FLAGS.epsilons, "epsilons")),
                        class_epsilons=class_epsilons, **given)


def _classifier(which, data_shape):
  """(model, record) of --classifier_path when class_pgd or generalization runs, else None."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import domain_classifier  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics.diagnostics import suite  # pylint: disable=g-import-not-at-top
  if not FLAGS.classifier_path or not any(w in which for w in suite.NEEDS_CLASSES):
    return None
  model, meta = domain_classifier.load_domain_classifier(FLAGS.classifier_path)
  errors.check(tuple(model.input_shape[1:]) == tuple(data_shape),
               f"--classifier_path {FLAGS.classifier_path} takes inputs of shape "
               f"{tuple(model.input_shape[1:])}, the run's data has "
               f"{tuple(data_shape)}; use a classifier trained on this dataset.")
  return model, {"name": meta.get("name"), "path": storage.abspath(FLAGS.classifier_path),
                 "metadata": meta}


def _mode_std():
  """dataset.std as bound in gin (None: unbound)."""
  import gin  # pylint: disable=g-import-not-at-top
  try:
    return gin.query_parameter("dataset.std")
  except ValueError:
    return None


def _write_outputs(out_dir, step, figures, arrays):
  """Writes the figures' PNGs and the arrays' npz files (``NAME_step<N>``); returns their paths."""
  from tfadvgan import images as images_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  written = []
  for name, image in figures.items():
    written.append(storage.join(out_dir, f"{name}_step{step}.png"))
    images_lib.write_png(written[-1], image)
  for name, values in arrays.items():
    written.append(storage.join(out_dir, f"{name}_step{step}.npz"))
    storage.save_npz(written[-1], **values)
  return written


def _by_eps(accuracies):
  """'eps 0: 0.912  eps 0.00392: 0.80' for {epsilon: accuracy}."""
  return "  ".join(f"eps {float(e):.3g}: {float(a):.3f}" for e, a in sorted(
      accuracies.items(), key=lambda item: float(item[0])))


def headline(results):
  """The printed summary of `run_diagnostics` results: one line per diagnostic, its main numbers
  (the JSON holds the rest)."""
  lines = []
  for key, name in (("accuracy", "D accuracy, FGSM"), ("pgd_accuracy", "D accuracy, PGD")):
    if key in results:
      for side in ("real", "fake"):
        lines.append((f"{name} ({side})", _by_eps(results[key][side])))
  for key, name in (("class_pgd", "AC head accuracy, PGD"),
                    ("class_pgd_classifier", "classifier accuracy, PGD")):
    if key in results:
      lines.append((name, _by_eps(results[key]["accuracy"])))
  if "dat" in results:
    d = results["dat"]
    lines.append(("DAT attack steps (mean)",
                  f"real {d['xi_real']:.3g} (failed {d['fail_real']:.3f})  "
                  f"fake {d['xi_fake']:.3g} (failed {d['fail_fake']:.3f})"))
  if "gradients" in results:
    g = results["gradients"]
    lines.append(("grad_x D on reals", f"L1 {g['l1']:.4g}  L2 {g['l2']:.4g}  "
                  f"sparsity {g['sparsity']:.3f}"))
  if "confidence" in results:
    c = results["confidence"]
    lines.append(("sigmoid(D) on reals", f"clean {c['real']:.3f}  FGSM eps {c['epsilon']:.3g}: "
                  f"{c['adversarial']:.3f}"))
  if "wdist" in results:
    lines.append(("mean D(real) - mean D(fake)", f"{results['wdist']:.4g}"))
  if "modes" in results:
    m = results["modes"]
    lines.append(("modes covered", f"{m['modes_covered']}/{m['num_modes']}  high quality "
                  f"{m['high_quality_fraction']:.3f}"))
  for name, g in results.get("generalization", {}).items():
    if isinstance(g, dict) and "llv_gap" in g:
      lines.append((f"{name}: LLV gap test - train", f"{g['llv_gap']:.4g}"))
  width = max((len(label) for label, _ in lines), default=0) + 1
  return [f"  {label + ':':<{width}}  {value}" for label, value in lines]


def _check_flags(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  errors.check(FLAGS.num >= 1, f"--num must be >= 1; got {FLAGS.num}.")
  errors.check(FLAGS.batch_size >= 1, f"--batch_size must be >= 1; got {FLAGS.batch_size}.")
  _floats(FLAGS.epsilons, "epsilons")


def _load(info):
  """The real examples of --split, after the --gin_file / --gin_param overrides."""
  import gin  # pylint: disable=g-import-not-at-top
  if FLAGS.gin_param or FLAGS.gin_file:
    with gin.unlock_config():
      common.parse_gin(FLAGS.gin_file, FLAGS.gin_param, finalize=False)
  return load_real(info, FLAGS.split or "test", FLAGS.num, split_given=FLAGS.split is not None)


def _meta(info, ckpt, step, name, split, images, head, which):
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  return {"model_dir": storage.abspath(FLAGS.model_dir), "checkpoint": ckpt, "step": step,
          "method": info.get("method"), "dataset": name, "split": split, "num": int(len(images)),
          "discriminator_head": head, "training_mode": bool(FLAGS.training_mode),
          "epsilon_scale": ("L-inf on the [-1, 1] image scale (1/255 = half an 8-bit level)"
                            if images.ndim == 4 else "L-inf in data units, no range clip"),
          "which": which}


@common.main_wrapper
def main(argv):
  import json  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics.diagnostics import suite  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as run_lib  # pylint: disable=g-import-not-at-top
  _check_flags(argv)
  gan, info, ckpt = run_lib.restore_run(FLAGS.model_dir, FLAGS.step)
  head = getattr(gan.discriminator, "head", "plain")
  which = _which(FLAGS.which, head == "ac", head, has_classifier=bool(FLAGS.classifier_path),
                 dataset=info.get("dataset"))
  images, labels, split, name = _load(info)
  errors.check(labels is not None or not gan.conditional,
               "This run is class-conditional but the loaded data has no labels.")
  errors.check("generalization" not in which or split != "train", "--which=generalization "
               "compares the train split with --split (default test): pick another --split.")
  settings, classifier = _settings(which), _classifier(which, images.shape[1:])
  step = int(gan.global_step.numpy())
  out_dir = FLAGS.out or storage.join(FLAGS.model_dir, "diagnostics")
  storage.makedirs(out_dir)
  results, figures, arrays = suite.run_diagnostics(
      gan, images, labels, [w for w in which if w != "generalization"], settings, classifier,
      dataset=name, mode_std=_mode_std())
  written = _write_outputs(out_dir, step, figures, arrays)
  if "generalization" in which:
    train_images, train_labels, _, _ = load_real(info, "train", FLAGS.num, split_given=True)
    results["generalization"] = suite.generalization(
        gan, {"train": (train_images, train_labels), "test": (images, labels)}, settings,
        classifier)
    results["generalization"]["test_split"] = split
  path = storage.join(out_dir, f"diagnostics_step{step}.json")
  storage.atomic_write(path, json.dumps(_jsonable(
      {**_meta(info, ckpt, step, name, split, images, head, which), **results}), indent=2))
  print(f"diagnostics of step {step} on {len(images)} {split} reals (and as many fakes):")
  print("\n".join(headline(results)))
  common.print_outputs(f"restored {ckpt}; diagnostics of step {step}",
                       [("JSON", path)] + [(p.rsplit(".", 1)[-1].upper(), p) for p in written])


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
