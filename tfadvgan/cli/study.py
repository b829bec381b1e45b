r"""Runs a study: variants x seeds, each trained, evaluated and diagnosed, then one table.

  python scripts/study.py --study=gin_configs/studies/as_gan_fmnist.gin --out=runs/as_gan_study

A study config binds `study.variants` (name, gin files, gin params), `study.seeds`,
`study.num_steps` and the evaluation settings. Every run goes through the project's own scripts in
a subprocess (train.py, eval.py, diagnose.py), so each has its own gin state and its own run
directory `OUT/<variant>/seed<k>` that can be inspected later. Finished steps are skipped on a
re-run, so an interrupted study resumes. Seeds run in the outer loop, so a study stopped early has
every variant at the same number of seeds. The table (mean ± std over seeds) goes to
`OUT/study.md` and `OUT/study.json`, with the exact commands that were run, and the figures
(`tfadvgan.metrics.figures`, needs matplotlib: `pip install tfadvgan[plots]`) beside them:

- `fid_curves.png`, with `study.curve_every_steps`: FID against the training step per variant, the
  mean over seeds with a ± std band (training evaluates every `curve_every_steps` steps on
  `curve_num_samples` samples with the study's classifier);
- `mode_samples.png`, for 2-D mixture runs diagnosed with `modes`: the samples of every (variant,
  seed) over the mode centres and their 3-std circles;
- `robustness.png`, for runs diagnosed with `class_pgd` (and `generalization`): the AC head's
  accuracy under PGD against eps and the train - test accuracy gap, mean ± std over seeds, with the
  reference classifier's accuracy dashed.

`study.classifier_path = None` skips the FID evaluation (the 2-D mixtures have no classifier).
"""

import json
import math
import os
import shlex
import subprocess
import sys
import time

from absl import flags
import gin

from tfadvgan.cli import common

flags.DEFINE_string("study", None, "Study gin file (required).")
flags.DEFINE_string("out", None, "Output directory (required).")
flags.DEFINE_multi_string("gin_param", [], "Bindings applied to the study config.")
flags.DEFINE_bool("dry_run", False, "Print the commands without running them.")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name):
  return [sys.executable, os.path.join(ROOT, "scripts", f"{name}.py")]


def _printable(cmd):
  return " ".join(shlex.quote(c) for c in cmd)  # a shell can run it as printed


def _other_success(cmd):
  """Exit statuses besides 0 that end a study step well: train.py's "stopped early, rerun to
  continue" when the step sets train.max_seconds, the study's equal-wall-time budget (its end)."""
  if cmd[:2] == _script("train") and any(c.startswith("--gin_param=train.max_seconds")
                                         for c in cmd):
    from tfadvgan.training import cluster  # pylint: disable=g-import-not-at-top
    return (cluster.EXIT_RERUN,)
  return ()


def _run(cmd, log, dry_run):
  printable = _printable(cmd)
  print(f"$ {printable}", flush=True)
  if dry_run:
    return printable
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  if storage.local_path(log):  # streamed, so a long run's log can be followed while it runs
    with open(storage.local_path(log), "a") as f:
      proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
  else:  # gs:// etc. have no append: the output is added to the log when the step ends
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    old = storage.read(log, binary=True) if storage.exists(log) else b""
    storage.atomic_write(log, old + proc.stdout)
  if proc.returncode != 0 and proc.returncode not in _other_success(cmd):
    from tfadvgan import errors  # pylint: disable=g-import-not-at-top
    raise errors.ConfigError(f"Study step failed (exit {proc.returncode}); see {log}:\n"
                             f"{printable}")
  return printable


def _mean_std(values):
  values = [v for v in values if v is not None and not math.isnan(v)]
  if not values:
    return None, None
  mean = sum(values) / len(values)
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
  return mean, std


def wdist_variance_last_fraction(run_dir, fraction=0.2):
  """Variance of the logged `train/wdist` over the last `fraction` of training steps; None for a
  run without training events (a fine-tuned run writes `finetune/` instead)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  if not storage.isdir(storage.join(run_dir, "train")):
    return None
  points = storage.read_scalars(storage.join(run_dir, "train"), "train/wdist")
  if not points:
    return None
  last = max(s for s, _ in points)
  tail = [v for s, v in points if s > (1.0 - fraction) * last]
  return float(np.var(tail)) if tail else None


def _latest(names, prefix):
  """The name `<prefix><step>.<ext>` with the highest step (None if there is none)."""
  steps = {}
  for name in names:
    step = name[len(prefix):].split(".")[0]
    if name.startswith(prefix) and step.isdigit():
      steps[int(step)] = name
  return steps[max(steps)] if steps else None


FINAL_METRICS = ("fid", "precision", "recall", "density", "coverage")  # collected at the last step


def collect(run_dir, eps_key, curve_num_samples=None):
  """The study's numbers of one finished run.

  FID (and precision, recall, density, coverage when `study.eval_flags` asks eval.py for them) is
  the last record at the last step (eval.py's, written after training). With
  `curve_num_samples`, `curve` lists `[step, fid]` of the records with that many samples, the first
  per step (those training wrote).
  """
  out = {}
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top
  results = evaluation.read_results(run_dir)
  records = [r for r in results if r["metric"].startswith("fid")]
  if records:
    last_step = max(r["step"] for r in records)
    for r in results:
      if r["step"] == last_step and r["metric"].split("_")[0] in FINAL_METRICS:
        out[r["metric"]] = r["value"]
    if curve_num_samples:
      curve = {}
      for r in records:
        if r.get("n") == curve_num_samples:
          curve.setdefault(r["step"], r["value"])
      out["curve"] = sorted([step, value] for step, value in curve.items())
  diag_dir = storage.join(run_dir, "diagnostics")
  diag = storage.read_json(storage.join(diag_dir, _latest(storage.listdir(diag_dir), "diagnostics_step")))
  if "accuracy" in diag:
    out[f"d_acc_real_fgsm_{eps_key}"] = diag["accuracy"]["real"][eps_key]
    out["d_acc_real_clean"] = diag["accuracy"]["real"]["0"]
  out["steps"] = diag["step"]  # differs between variants only under a wall-time budget
  if "gradients" in diag:
    out["grad_l1"] = diag["gradients"]["l1"]
    out["grad_sparsity"] = diag["gradients"]["sparsity"]
  if "modes" in diag:
    out["modes_covered"] = diag["modes"]["modes_covered"]
    out["high_quality_fraction"] = diag["modes"]["high_quality_fraction"]
  if "class_pgd" in diag:  # Rob-GAN Table 1: the AC head under PGD
    for eps, acc in diag["class_pgd"]["accuracy"].items():
      out[f"class_acc_pgd_{eps}"] = acc
  if "class_pgd_classifier" in diag:  # the same attack on a reference classifier
    for eps, acc in diag["class_pgd_classifier"]["accuracy"].items():
      out[f"ref_acc_pgd_{eps}"] = acc
  gen = diag.get("generalization", {}).get("discriminator")
  if gen:  # Rob-GAN Fig. 1: train vs test
    out["llv_train"], out["llv_test"] = gen["train"]["llv_mean"], gen["test"]["llv_mean"]
    for eps, gap in gen["accuracy_gap"].items():
      out[f"acc_gap_pgd_{eps}"] = gap
  if "dat" in diag:
    out["xi_fake"] = diag["dat"]["xi_fake"]
    out["xi_real"] = diag["dat"]["xi_real"]
    for side, first in diag["dat"].get("first_order", {}).items():  # Eqs. 11-13
      out[f"first_order_error_{side}"] = first["relative_error_median"]
      out[f"overshoot_{side}"] = first["overshoot_fraction"]
  out["wdist_var_last20"] = wdist_variance_last_fraction(run_dir)
  return out


def table(rows, seeds):
  metrics = sorted({k for r in rows for s in r["per_seed"] for k in s if k != "curve"})
  head = "| variant | " + " | ".join(metrics) + " |"
  lines = [head, "|" + " --- |" * (len(metrics) + 1)]
  for r in rows:
    cells = []
    for m in metrics:
      mean, std = _mean_std([s.get(m) for s in r["per_seed"]])
      cells.append("n/a" if mean is None else f"{mean:.4g} ± {std:.2g}")
    lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
  lines.append(f"\nmean ± std (population) over seeds {list(seeds)}.")
  return "\n".join(lines)


def run_study(out, variants, seeds=(0, 1, 2), num_steps=2000, classifier_path=None,
              eval_num_samples=5000, diagnose_num=1000, fgsm_epsilon=1.0 / 255,
              diagnose_which=("accuracy", "gradients"), extra_params=(), curve_every_steps=0,
              curve_num_samples=2000, diagnose_flags=(), eval_flags=(), finetunes=(),
              dry_run=False):
  """Trains, evaluates and diagnoses every (seed, variant); returns the rows of the table.

  `finetunes` lists `(name, variant, gin params)`: after the variants of a seed, each fine-tunes
  that seed's `variant` run with scripts/finetune.py (Rob-GAN Eq. 10) into `OUT/<name>/seed<k>`
  and diagnoses it like the variants (no FID: G is unchanged). `diagnose_flags` are extra
  diagnose.py flags (e.g. `--classifier_path=...`, `--class_epsilons=...`); `eval_flags` extra
  eval.py flags (e.g. `--reference_split=test`; a flag given twice takes the last value).
  """
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  curve_every_steps = _check_study(variants, classifier_path, curve_every_steps, finetunes)
  storage.makedirs(out)
  steps = _StudySteps(out, [v[0] for v in variants] + [f[0] for f in finetunes], dry_run,
                      eps_key=format(float(fgsm_epsilon), ".8g"),
                      curve_num_samples=curve_every_steps and curve_num_samples,
                      diagnose_args=[f"--which={','.join(diagnose_which)}",
                                     f"--epsilons=0,{fgsm_epsilon}", f"--num={diagnose_num}"]
                      + list(diagnose_flags))
  for seed in seeds:  # outer, so a study stopped early has every variant at the same seeds
    for name, gin_files, params in variants:
      run_dir = storage.join(out, name, f"seed{seed}")
      curve = [] if not curve_every_steps else _curve_params(run_dir, curve_every_steps,
                                                             classifier_path, curve_num_samples)
      train_cmd = _script("train") + [f"--gin_file={os.path.join(ROOT, 'gin_configs', g)}"
                                      for g in gin_files] + [
          f"--model_dir={run_dir}", f"--gin_param=train.seed = {seed}",
          f"--gin_param=train.num_steps = {num_steps}", "--gin_param=train.verbose = 2"] + [
          f"--gin_param={p}" for p in list(params) + list(extra_params) + curve]
      eval_cmd = _script("eval") + [f"--model_dir={run_dir}", "--classifier=domain",
                                    f"--classifier_path={classifier_path}",
                                    f"--num_samples={eval_num_samples}", "--metrics=fid"] + list(
                                        eval_flags)
      steps.finish(name, run_dir, storage.join(out, f"{name}_seed{seed}.log"),
                   [train_cmd] + ([eval_cmd] if classifier_path else [])
                   + [steps.diagnose(run_dir)])
    for name, base, params in finetunes:
      steps.finetune(name, base, params, seed)
  rows = [{"variant": name, "gin_files": list(gin_files), "params": list(params),
           "per_seed": steps.per_seed[name]} for name, gin_files, params in variants]
  rows += [{"variant": name, "finetunes": base, "params": list(params),
            "per_seed": steps.per_seed[name]} for name, base, params in finetunes]
  return rows, steps.commands


def _check_study(variants, classifier_path, curve_every_steps, finetunes):
  """ConfigError for a bad study config; returns `curve_every_steps` as an int."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  errors.check(variants, "study.variants is empty.")
  errors.check(classifier_path is None or storage.exists(classifier_path),
               f"study.classifier_path {classifier_path!r} does not exist: train one with "
               "scripts/train_classifier.py --out=PATH (or set it to None to skip FID).")
  curve_every_steps = errors.check_int("study.curve_every_steps", curve_every_steps, low=0)
  errors.check(not curve_every_steps or classifier_path,
               "study.curve_every_steps needs study.classifier_path (the FID classifier).")
  names = [v[0] for v in variants]
  for name, base, _ in finetunes:
    errors.check(base in names, f"study.finetunes entry {name!r} fine-tunes variant {base!r}, "
                 f"which is not in study.variants ({', '.join(names)}).")
  errors.check(len(set(names + [f[0] for f in finetunes])) == len(names) + len(finetunes),
               "study.variants and study.finetunes need distinct names.")
  return curve_every_steps


def _curve_params(run_dir, every, classifier_path, num_samples):
  """The train.py bindings of the FID curve: evaluation every `every` steps in training."""
  return [f"train.eval_every_steps = {every}", "train.eval_fn = @make_eval_fn()",
          f"make_eval_fn.model_dir = '{run_dir}'", "make_eval_fn.classifier = 'domain'",
          f"make_eval_fn.classifier_path = '{classifier_path}'",
          f"make_eval_fn.num_samples = {num_samples}", "make_eval_fn.metrics = ['fid']"]


class _StudySteps:
  """Runs the study's steps (each a list of commands for one run directory) and keeps what they
  give: `commands` (for study.md, in order) and `per_seed` (name -> the collected numbers)."""

  def __init__(self, out, names, dry_run, eps_key, curve_num_samples, diagnose_args):
    self.out, self.dry_run, self.eps_key = out, dry_run, eps_key
    self.curve_num_samples, self.diagnose_args = curve_num_samples, diagnose_args
    self.commands, self.per_seed = [], {name: [] for name in names}

  def diagnose(self, run_dir):
    return _script("diagnose") + [f"--model_dir={run_dir}"] + self.diagnose_args

  def finetune(self, name, base, params, seed):
    """The fine-tune `name` of variant `base`'s run of `seed`, then its diagnosis."""
    from tfadvgan import storage  # pylint: disable=g-import-not-at-top
    run_dir = storage.join(self.out, name, f"seed{seed}")
    finetune_cmd = _script("finetune") + [
        f"--model_dir={storage.join(self.out, base, f'seed{seed}')}", f"--out_dir={run_dir}"] + [
            f"--gin_param={p}" for p in params]
    # finetune.py refuses a non-empty --out_dir: a fine-tune that finished (finetune.json is
    # written last) before the study stopped is not run again.
    self.finish(name, run_dir, storage.join(self.out, f"{name}_seed{seed}.log"),
                [finetune_cmd, self.diagnose(run_dir)],
                ran=int(storage.exists(storage.join(run_dir, "finetune.json"))))

  def finish(self, name, run_dir, log, cmds, ran=0):
    """Runs `cmds` (the first `ran` finished earlier: listed, not run again), then collects."""
    from tfadvgan import storage  # pylint: disable=g-import-not-at-top
    done = storage.join(run_dir, "study_done.json")
    if storage.exists(done) and not self.dry_run:  # finished earlier: its commands still go in study.md
      self.per_seed[name].append(storage.read_json(done))
      self.commands.extend(_printable(cmd) for cmd in cmds)
      return
    t0 = time.time()
    for i, cmd in enumerate(cmds):
      self.commands.append(_printable(cmd) if i < ran and not self.dry_run
                           else _run(cmd, log, self.dry_run))
    if self.dry_run:
      return
    numbers = collect(run_dir, self.eps_key, self.curve_num_samples)
    numbers["train_eval_seconds"] = time.time() - t0
    storage.atomic_write(done, json.dumps(numbers))  # a torn file would break resuming
    self.per_seed[name].append(numbers)


# What a study config binds (`study.variants`, `study.seeds`, ...).
study = gin.external_configurable(run_study, name="study")


def parse_study(study_file, params):
  """Parses (and locks) a study config, after importing what `collect` needs: a gin configurable
  registered after the lock is an error, so every module that registers one must be in already."""
  from tfadvgan.metrics import evaluation  # pylint: disable=g-import-not-at-top,unused-import
  common.parse_gin([study_file], params)


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.study and FLAGS.out, "--study and --out are required.")
  parse_study(FLAGS.study, FLAGS.gin_param)
  rows, commands = study(FLAGS.out, dry_run=FLAGS.dry_run)
  if FLAGS.dry_run:
    return
  seeds = gin.query_parameter("study.seeds") if _bound("study.seeds") else (0, 1, 2)
  text = table(rows, seeds)
  print(text)
  storage.atomic_write(storage.join(FLAGS.out, "study.md"), text + "\n\nCommands:\n\n"
                  + "\n".join(commands) + "\n")
  storage.atomic_write(storage.join(FLAGS.out, "study.json"),
                  json.dumps({"rows": rows, "commands": commands,
                              "config": gin.config_str()}, indent=2))
  for path in draw_figures(FLAGS.out, rows, seeds):
    print(f"figure: {path}")


def draw_figures(out, rows, seeds):
  """The study's PNGs beside study.md (FID curves; 2-D samples over the modes; accuracy under PGD
  and the train - test gap against eps); their paths."""
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import figures  # pylint: disable=g-import-not-at-top
  written = []
  curves = {r["variant"]: [s["curve"] for s in r["per_seed"] if s.get("curve")] for r in rows}
  if any(curves.values()):
    path = storage.join(out, "fid_curves.png")
    figures.fid_curves_png(path, {k: v for k, v in curves.items() if v}, seeds)
    written.append(path)
  panels = []
  for r in rows:
    for seed in seeds:
      diag_dir = storage.join(out, r["variant"], f"seed{seed}", "diagnostics")
      name = _latest(storage.listdir(diag_dir), "mode_samples_step") if storage.exists(diag_dir) else None
      if name:
        panels.append((f"{r['variant']} seed {seed}", storage.join(diag_dir, name)))
  if panels:
    path = storage.join(out, "mode_samples.png")
    figures.mode_samples_png(path, panels, columns=len(seeds))
    written.append(path)
  robust = {r["variant"]: r["per_seed"] for r in rows
            if any(k.startswith("class_acc_pgd_") for s in r["per_seed"] for k in s)}
  if robust:
    path = storage.join(out, "robustness.png")
    refs = next((r["per_seed"] for r in rows
                 if any(k.startswith("ref_acc_pgd_") for s in r["per_seed"] for k in s)), None)
    reference = ("reference classifier (its own architecture)", refs) if refs else None
    figures.robustness_png(path, robust, seeds, reference=reference)
    written.append(path)
  return written


def _bound(key):
  try:
    gin.query_parameter(key)
    return True
  except ValueError:
    return False


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
