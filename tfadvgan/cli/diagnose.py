r"""Robustness and gradient diagnostics of a trained run's discriminator.

  python scripts/diagnose.py --model_dir=DIR [--step=N|best] [--split=test] [--num=1000] \
      [--epsilons=0,0.00196,0.00392,0.00784,0.01569] [--out=DIR/diagnostics] \
      [--which=accuracy,pgd_accuracy,class_pgd,dat,gradients,confidence,wdist,modes,generalization]

Restores the run (`run.restore_run`), loads `--num` real examples of `--split` through the run's
own gin config (`dataset.*` from its operative_config.gin, then `--gin_file` and `--gin_param`:
`--gin_param "dataset.path = '...'"` points at moved data), draws as many fakes from the run's
sampler (EMA G when enabled), runs the chosen diagnostics (`tfadvgan.metrics.diagnostics`, which
documents every definition), prints their headline numbers and writes `diagnostics_step<N>.json`
plus, for `gradients` on image data, `gradient_grid_step<N>.png` (AS-GAN Fig. 2),
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

import functools

from absl import flags

from tfadvgan.cli import common

WHICH = ("accuracy", "pgd_accuracy", "class_pgd", "dat", "gradients", "confidence", "wdist",
         "modes", "generalization")
NEEDS_CLASSES = ("class_pgd", "generalization")  # an AC head or --classifier_path
MIXTURES = ("ring", "grid")

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
  if text is None:  # generalization loads a second split: only on request
    return [w for w in WHICH if (w not in NEEDS_CLASSES or has_ac_head or has_classifier)
            and (w != "modes" or dataset in MIXTURES) and w != "generalization"]
  chosen = [w.strip() for w in text.split(",") if w.strip()]
  errors.check(chosen, "--which is empty.")
  for w in chosen:
    errors.choose("diagnostic (--which)", w, {k: k for k in WHICH})
  errors.check("modes" not in chosen or dataset in MIXTURES,
               f"--which=modes needs a run on a 2-D mixture ({', '.join(MIXTURES)}); this run's "
               f"dataset is {dataset!r}. Drop modes from --which.")
  for w in NEEDS_CLASSES:
    errors.check(w not in chosen or has_ac_head or has_classifier,
                 f"--which={w} needs a discriminator with an auxiliary-classifier head "
                 f"(build_discriminator.head = 'ac', as in Rob-GAN runs) or --classifier_path; "
                 f"this run's head is {head!r}. Drop {w} from --which.")
  return chosen


def _binds_source():
  """True when --gin_param or --gin_file binds dataset.source (the run's own source is not used)."""
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  texts = list(FLAGS.gin_param) + [io.read(path) for path in FLAGS.gin_file]
  return any("dataset.source" in text for text in texts)


def load_real(info, split, num, split_given):
  """``num`` real examples of the run's dataset: (images [n, ...] float32, labels [n] or None)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run_dir  # pylint: disable=g-import-not-at-top
  use_run_source = not _binds_source()
  try:
    source = run_dir.load_run_source(info, split, use_run_source)
  except errors.ConfigError as e:
    if split_given or "Unknown split" not in str(e):
      raise
    print(f"[tfadvgan] dataset has no {split!r} split; using 'train'.")
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


def make_fakes(gan, num, labels, seed, batch_size):
  """``num`` samples of the run's sampler (inference mode) and their labels (or None)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  g = gan.sampler()
  from tfadvgan import rng  # pylint: disable=g-import-not-at-top
  z = tf.random.stateless_normal([num, g.latent_dim], seed=[seed, rng.DIAGNOSE_Z])
  fake_labels = None
  if gan.conditional:
    fake_labels = (labels[:num] if labels is not None and len(labels) >= num
                   else (np.arange(num) % g.num_classes)).astype(np.int32)
  out = []
  for i in range(0, num, batch_size):
    lab = fake_labels[i:i + batch_size] if fake_labels is not None else None
    out.append(g(z[i:i + batch_size], lab, training=False).numpy())
  return np.concatenate(out).astype(np.float32), fake_labels


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


def run_diagnostics(gan, images, labels, which, out_dir, step, dataset=None):
  """Runs the chosen diagnostics, writing PNGs to `out_dir`; returns (results, PNG paths)."""
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import diagnostics as diag  # pylint: disable=g-import-not-at-top
  from tfadvgan import images as images_lib  # pylint: disable=g-import-not-at-top
  bs = FLAGS.batch_size
  is_image = images.ndim == 4
  d_fn = diag.discriminator_fn(gan, training=FLAGS.training_mode)
  y = labels if gan.conditional else None
  needs_fakes = any(w in which for w in ("accuracy", "pgd_accuracy", "dat", "wdist"))
  fakes, fake_labels = (make_fakes(gan, len(images), labels, FLAGS.seed, bs) if needs_fakes
                        else (None, None))
  eps = _floats(FLAGS.epsilons, "epsilons")
  results = {}
  written = []
  for attack, key in (("fgsm", "accuracy"), ("pgd", "pgd_accuracy")):
    if key in which:
      kw = dict(attack=attack, epsilons=eps, pgd_steps=FLAGS.pgd_steps, clip=is_image,
                batch_size=bs)
      results[key] = {
          "attack": attack, "loss": "bce",
          "real": diag.d_accuracy(d_fn, images, y, real=True, **kw),
          "fake": diag.d_accuracy(d_fn, fakes, fake_labels, real=False, **kw)}
      if attack == "pgd":
        results[key].update(steps=FLAGS.pgd_steps, step_size="2.5 * eps / steps")
  if "class_pgd" in which:
    from tfadvgan import errors  # pylint: disable=g-import-not-at-top
    errors.check(labels is not None, "class_pgd needs a labelled dataset.")
    class_kw = dict(epsilons=_floats(FLAGS.class_epsilons, "class_epsilons"),
                    steps=FLAGS.class_pgd_steps, clip=is_image, batch_size=bs)
    if getattr(gan.discriminator, "head", None) == "ac":
      results["class_pgd"] = {
          "steps": FLAGS.class_pgd_steps, "step_size": "eps / 5",
          "accuracy": diag.classifier_accuracy_under_pgd(d_fn, images, labels, **class_kw)}
    if FLAGS.classifier_path:
      model, meta = _load_classifier(FLAGS.classifier_path)
      errors.check(tuple(model.input_shape[1:]) == tuple(images.shape[1:]),
                   f"--classifier_path {FLAGS.classifier_path} takes inputs of shape "
                   f"{tuple(model.input_shape[1:])}, the run's data has "
                   f"{tuple(images.shape[1:])}; use a classifier trained on this dataset.")
      results["class_pgd_classifier"] = {
          "name": meta.get("name"), "path": io.abspath(FLAGS.classifier_path),
          "metadata": meta, "steps": FLAGS.class_pgd_steps, "step_size": "eps / 5",
          "accuracy": diag.classifier_accuracy_under_pgd(
              lambda x, labels=None: model(x, training=False), images, labels, **class_kw)}
  if "dat" in which:
    results["dat"] = diag.dat_attack_success(
        d_fn, images, fakes, loss=gan.loss_fn, tolerance=FLAGS.dat_tolerance,
        max_iters=FLAGS.dat_max_iters, step_size=FLAGS.dat_step_size, value=FLAGS.dat_value,
        real_labels=y, fake_labels=fake_labels, clip=is_image, batch_size=bs)
    # Eqs. 11-13: does the first-order expansion hold for the run's own attack (DAT's eps and
    # step; eps 0.01 and sign steps for other runs)?
    is_dat = gan.targeted_attack
    kw = dict(epsilon=gan.epsilon if is_dat else 0.01, step=gan.step if is_dat else "sign",
              value=FLAGS.dat_value, loss=gan.loss_fn, clip=is_image, batch_size=bs)
    results["dat"]["first_order"] = {
        "real": diag.dat_first_order(d_fn, images, results["dat"]["target_real"], real=True,
                                     labels=y, **kw),
        "fake": diag.dat_first_order(d_fn, fakes, results["dat"]["target_fake"], real=False,
                                     labels=fake_labels, **kw)}
  if "gradients" in which:
    stats = diag.input_gradient_stats(d_fn, images, y, bins=FLAGS.bins, batch_size=bs)
    results["gradients"] = stats
    if is_image:
      n = min(FLAGS.grid_num, len(images))
      paths = {name: io.join(out_dir, f"{name}_step{step}.png")
               for name in ("gradient_grid", "gradient_inputs", "gradient_histogram")}
      images_lib.write_png(paths["gradient_grid"], diag.gradient_grid(
          d_fn, images[:n], y[:n] if y is not None else None, batch_size=bs))
      images_lib.write_png(paths["gradient_inputs"], images_lib.grid(images[:n]))
      images_lib.write_png(paths["gradient_histogram"],
                           diag.histogram_image(stats["histogram"]["counts"]))
      written += list(paths.values())
  if "confidence" in which:
    results["confidence"] = diag.confidence_real_vs_adversarial(
        d_fn, images, FLAGS.confidence_epsilon, y, clip=is_image, batch_size=bs)
  if "wdist" in which:
    results["wdist"] = diag.wasserstein_estimate(d_fn, images, fakes, y, fake_labels, bs)
  if "modes" in which:
    results["modes"], path = _modes(gan, dataset, out_dir, step)
    written.append(path)
  return results, written


@functools.lru_cache(maxsize=None)
def _load_classifier(path):
  """--classifier_path's model and metadata, loaded once (class_pgd and generalization use it)."""
  from tfadvgan.metrics import domain_classifier  # pylint: disable=g-import-not-at-top
  return domain_classifier.load_domain_classifier(path)


def _classifiers(gan, d_fn):
  """[(name, class_logits_fn)]: the AC head and the --classifier_path model, where present."""
  out = []
  if getattr(gan.discriminator, "head", None) == "ac":
    out.append(("discriminator", d_fn))
  if FLAGS.classifier_path:
    model, _ = _load_classifier(FLAGS.classifier_path)
    out.append(("classifier", lambda x, labels=None: model(x, training=False)))
  return out


def generalization(gan, splits):
  """Rob-GAN Fig. 1: local Lipschitz value and accuracy under PGD on train vs test reals.

  `splits` maps "train" / "test" to (images, labels). For each classifier (AC head, and the
  --classifier_path model): per split the mean LLV ||grad_x CE||_2 and the accuracy under
  --class_epsilons PGD (as class_pgd), and the gaps test - train (LLV) and train - test (accuracy).
  """
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import diagnostics as diag  # pylint: disable=g-import-not-at-top
  d_fn = diag.discriminator_fn(gan, training=FLAGS.training_mode)
  kw = dict(epsilons=_floats(FLAGS.class_epsilons, "class_epsilons"),
            steps=FLAGS.class_pgd_steps, batch_size=FLAGS.batch_size)
  results = {}
  for name, fn in _classifiers(gan, d_fn):
    per_split = {}
    for split, (images, labels) in splits.items():
      errors.check(labels is not None, f"generalization needs labels; split {split!r} has none.")
      per_split[split] = {
          "llv_mean": diag.local_lipschitz(fn, images, labels, FLAGS.batch_size)["mean"],
          "accuracy": diag.classifier_accuracy_under_pgd(fn, images, labels, clip=True, **kw)}
    train, test = per_split["train"], per_split["test"]
    results[name] = {**per_split, "llv_gap": test["llv_mean"] - train["llv_mean"],
                     "accuracy_gap": {e: train["accuracy"][e] - test["accuracy"][e]
                                      for e in train["accuracy"]}}
  results.update(definition="llv = ||grad_x CE(f(x), y)||_2 at the data point (Rob-GAN Fig. 1), "
                 "mean over examples; accuracy under L-inf PGD on the cross entropy "
                 f"({FLAGS.class_pgd_steps} steps of eps / 5); gaps: llv test - train, "
                 "accuracy train - test", steps=FLAGS.class_pgd_steps)
  return results


def _modes(gan, name, out_dir, step):
  """Mode coverage of `--mode_samples` fakes; their samples go to an npz beside the JSON."""
  import io as py_io  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfadvgan import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import mode_coverage  # pylint: disable=g-import-not-at-top
  errors.check(FLAGS.mode_samples >= 1, f"--mode_samples must be >= 1; got {FLAGS.mode_samples}.")
  try:
    std = gin.query_parameter("dataset.std")
  except ValueError:
    std = None
  std = data_lib.MODE_STD[name] if std is None else float(std)
  centres = data_lib.mode_centres(name)
  samples, _ = make_fakes(gan, FLAGS.mode_samples, None, FLAGS.seed, FLAGS.batch_size)
  result = mode_coverage.mode_coverage(samples, centres, std, FLAGS.mode_num_std,
                                       FLAGS.mode_min_count)
  result.update(dataset=name, seed=FLAGS.seed)
  buf = py_io.BytesIO()
  np.savez(buf, samples=samples, centres=centres, std=np.float32(std))
  path = io.join(out_dir, f"mode_samples_step{step}.npz")
  io.atomic_write(path, buf.getvalue())
  return result, path


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


@common.main_wrapper
def main(argv):
  import json  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as run_lib  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  errors.check(FLAGS.num >= 1, f"--num must be >= 1; got {FLAGS.num}.")
  errors.check(FLAGS.batch_size >= 1, f"--batch_size must be >= 1; got {FLAGS.batch_size}.")
  _floats(FLAGS.epsilons, "epsilons")
  gan, info, ckpt = run_lib.restore_run(FLAGS.model_dir, FLAGS.step)
  head = getattr(gan.discriminator, "head", "plain")
  which = _which(FLAGS.which, head == "ac", head, has_classifier=bool(FLAGS.classifier_path),
                 dataset=info.get("dataset"))
  if FLAGS.gin_param or FLAGS.gin_file:
    with gin.unlock_config():
      common.parse_gin(FLAGS.gin_file, FLAGS.gin_param, finalize=False)
  images, labels, split, name = load_real(info, FLAGS.split or "test", FLAGS.num,
                                          split_given=FLAGS.split is not None)
  errors.check(labels is not None or not gan.conditional,
               "This run is class-conditional but the loaded data has no labels.")
  step = int(gan.global_step.numpy())
  out_dir = FLAGS.out or io.join(FLAGS.model_dir, "diagnostics")
  io.makedirs(out_dir)
  results, written = run_diagnostics(gan, images, labels, which, out_dir, step, dataset=name)
  if "generalization" in which:
    errors.check(split != "train", "--which=generalization compares the train split with "
                 "--split (default test): pick another --split.")
    train_images, train_labels, _, _ = load_real(info, "train", FLAGS.num, split_given=True)
    results["generalization"] = generalization(
        gan, {"train": (train_images, train_labels), "test": (images, labels)})
    results["generalization"]["test_split"] = split
  meta = {"model_dir": io.abspath(FLAGS.model_dir), "checkpoint": ckpt, "step": step,
          "method": info.get("method"), "dataset": name, "split": split, "num": int(len(images)),
          "discriminator_head": head, "training_mode": bool(FLAGS.training_mode),
          "epsilon_scale": ("L-inf on the [-1, 1] image scale (1/255 = half an 8-bit level)"
                            if images.ndim == 4 else "L-inf in data units, no range clip"),
          "which": which}
  path = io.join(out_dir, f"diagnostics_step{step}.json")
  io.atomic_write(path, json.dumps(_jsonable({**meta, **results}), indent=2))
  print(f"diagnostics of step {step} on {len(images)} {split} reals (and as many fakes):")
  print("\n".join(headline(results)))
  common.print_outputs(f"restored {ckpt}; diagnostics of step {step}",
                       [("JSON", path)] + [(p.rsplit(".", 1)[-1].upper(), p) for p in written])


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
