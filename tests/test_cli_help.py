"""Every script's --help lists its own flags with their defaults, and flags and gin bindings are
checked before TensorFlow is imported (tfadvgan.cli.gin_check)."""
import ast
import glob
import json
import os
import re
import subprocess
import sys

import gin
import pytest

from tfadvgan import config
from tfadvgan import errors
from tfadvgan.cli import gin_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "scripts", "*.py")))
# sample and export read only the run's config; study's and benchmark's gin files are --study,
# --config.
GIN_FLAGS = {"sample": set(), "export": set(), "study": {"gin_param"}, "benchmark": {"gin_param"}}
DEMO = os.path.join(ROOT, "gin_configs", "demo.gin")

# Runs a script in-process under runpy and reports, after it exits, whether TensorFlow was
# imported and the flags its CLI module defines.
_RUNNER = """
import json, runpy, sys
path, module = sys.argv[1], sys.argv[2]
sys.argv = [path] + sys.argv[3:]
code = 0
try:
  runpy.run_path(path, run_name="__main__")
except SystemExit as e:
  code = e.code
from absl import flags
own = [f.name for f in flags.FLAGS.get_flags_for_module(module)]
print("@@" + json.dumps({"tf": "tensorflow" in sys.modules, "code": code, "own": own}))
"""


def _run(script, args):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
  proc = subprocess.run(
      [sys.executable, "-c", _RUNNER, os.path.join(ROOT, "scripts", f"{script}.py"),
       f"tfadvgan.cli.{script}"] + args, capture_output=True, text=True, cwd=ROOT, env=env,
      timeout=120, check=False)
  out, _, report = proc.stdout.rpartition("@@")
  return out, proc.stderr, json.loads(report)


def _flag_entries(help_text, script):
  """{flag name: its help text} of the `scripts/X.py:` section of --help."""
  section = help_text.split(f"scripts/{script}.py:\n", 1)[1].split("\n\n", 1)[0]
  entries = re.split(r"\n  (?=--)", "\n" + section)
  out = {}
  for entry in entries:
    m = re.match(r"\s*--(?:\[no\])?(\w+):", entry)
    if m:
      out[m.group(1)] = entry
  return out


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_the_scripts_own_flags_with_defaults_without_tensorflow(script):
  out, err, report = _run(script, ["--help"])
  assert not report["tf"], f"{script} --help imported TensorFlow"
  assert err == "", err
  entries = _flag_entries(out, script)
  expected = set(report["own"]) | GIN_FLAGS.get(script, {"gin_file", "gin_param"})
  if script == "eval":  # sample.py's flags that eval uses
    expected |= {"model_dir", "step", "seed"}
  assert expected <= set(entries), sorted(expected - set(entries))
  undocumented = [name for name, text in entries.items()
                  if not re.search(r"default|required", text, re.I)]
  assert not undocumented, f"{script}: flags without a default or 'required': {undocumented}"
  with open(os.path.join(ROOT, "tfadvgan", "cli", f"{script}.py"), encoding="utf-8") as f:
    doc = ast.get_docstring(ast.parse(f.read()), clean=False)
  assert out.startswith(doc), "--help starts with the CLI module's docstring"


@pytest.mark.parametrize("param,expected", [
    ("train.num_step = 2", "Unknown gin binding train.num_step (in --gin_param 'train.num_step = "
     "2'): train has no parameter 'num_step'; did you mean train.num_steps?"),
    ("trian.num_steps = 2", "Unknown gin configurable 'trian' (in --gin_param 'trian.num_steps = "
     "2'); did you mean train?"),
    ("build_gan.method = @ASGNA", "Unknown gin reference '@ASGNA' (in --gin_param "
     "'build_gan.method = @ASGNA'); did you mean ASGAN?"),
])
def test_a_typo_is_refused_in_one_line_before_tensorflow_is_imported(tmp_path, param, expected):
  model_dir = tmp_path / "run"
  _, err, report = _run("train", [f"--gin_file={DEMO}", f"--model_dir={model_dir}",
                                  f"--gin_param={param}"])
  assert report["code"] == 2 and err == f"error: {expected}\n", err
  assert not report["tf"]
  assert not model_dir.exists()


def test_the_source_index_equals_gins_registry():
  # Importing these registers every tfadvgan configurable.
  import tfadvgan.cli.study  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tfadvgan.training.finetune  # noqa: F401  pylint: disable=g-import-not-at-top
  import tfadvgan.training.run  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tfadvgan.metrics.domain_classifier  # noqa: F401  pylint: disable=g-import-not-at-top
  import tfadvgan.metrics.evaluation  # noqa: F401  pylint: disable=g-import-not-at-top
  registry = {}
  for selector, c in config._configurables().items():  # pylint: disable=protected-access
    if selector.startswith("tfadvgan.") or selector.startswith("gin."):
      accepted = config._accepted_parameters(c)  # pylint: disable=protected-access
      if accepted is not None:
        accepted = frozenset(accepted - set(c.denylist or ()))
      registry[selector] = accepted
  index = gin_check.index()
  assert set(index) == set(registry)
  # None: the index does not follow **kwargs into Keras (any parameter passes the precheck; gin
  # checks it after the import). Every parameter set the index does hold is gin's.
  assert {k: v for k, v in index.items() if v is not None and v != registry[k]} == {}
  assert {k for k, v in index.items() if v is None} <= {
      k for k in index if k.startswith("tfadvgan.models.")}


def test_files_and_includes_are_checked_with_their_line(tmp_path):
  inner = tmp_path / "inner.gin"
  inner.write_text("train.num_steps = 3\n\nASGAN:\n  epsilom = 0.1\n")
  outer = tmp_path / "outer.gin"
  outer.write_text(f"include '{inner}'\n")
  with pytest.raises(errors.ConfigError) as e:
    gin_check.check([str(outer)], [])
  assert str(e.value) == (f"Unknown gin binding ASGAN.epsilom (in {inner} line 4): ASGAN has no "
                          "parameter 'epsilom'; did you mean ASGAN.epsilon?")
  gin_check.check([DEMO], ["D/make_optimizer.learning_rate = 1e-3",
                           "ASGAN.epsilon = 0.01", "X = 3", "train.seed = %X"])


def test_what_passes_the_precheck_parses_in_gin():
  # The precheck is no stricter than gin: a config it accepts, gin accepts too.
  bindings = ["build_gan.method = 'as_gan'", "ASGAN.epsilon = 0.02",
              "tfadvgan.gans.as_gan.ASGAN.n_dis = 2", "G/build_generator.width = 8"]
  gin_check.check([DEMO], bindings)
  import tfadvgan.training.run  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  with gin.unlock_config():
    gin.clear_config()
    try:
      config.parse_gin([DEMO], bindings, finalize=False)
    finally:
      gin.clear_config()


def test_diagnose_prints_its_headline_numbers():
  # In a child process: tfadvgan.cli.diagnose defines flags that other CLI modules define too.
  results = {
      "accuracy": {"real": {0.0: 0.9, 0.00392: 0.625}, "fake": {0.0: 0.75, 0.00392: 0.5}},
      "class_pgd": {"accuracy": {0.0: 0.875, 0.02: 0.25}},
      "confidence": {"real": 0.7, "adversarial": 0.4, "epsilon": 0.00392},
      "wdist": 1.25,
      "modes": {"modes_covered": 7, "num_modes": 8, "high_quality_fraction": 0.8125}}
  code = ("import json, sys\nfrom tfadvgan.cli import diagnose\n"
          f"r = json.loads({json.dumps(json.dumps(results))})\n"
          "print('\\n'.join(diagnose.headline(r)))\n"
          "print('tensorflow' in sys.modules)\n")
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                        env=env, timeout=60, check=True)
  assert proc.stdout.splitlines() == [
      "  D accuracy, FGSM (real):      eps 0: 0.900  eps 0.00392: 0.625",
      "  D accuracy, FGSM (fake):      eps 0: 0.750  eps 0.00392: 0.500",
      "  AC head accuracy, PGD:        eps 0: 0.875  eps 0.02: 0.250",
      "  sigmoid(D) on reals:          clean 0.700  FGSM eps 0.00392: 0.400",
      "  mean D(real) - mean D(fake):  1.25",
      "  modes covered:                7/8  high quality 0.812",
      "False"]


_LOGGING_SCRIPT = """
import logging
from absl import app
from absl import logging as absl_logging
from tfadvgan.cli import common

@common.main_wrapper
def main(argv):
  handler = absl_logging.get_absl_handler()
  for path, level, msg in [(common.__file__, logging.INFO, "ours info"),
                           (common.__file__, logging.WARNING, "ours warning"),
                           ("/elsewhere/x.py", logging.INFO, "theirs info"),
                           ("/elsewhere/x.py", logging.WARNING, "theirs warning")]:
    if absl_logging.get_absl_logger().isEnabledFor(level):
      handler.handle(logging.LogRecord("absl", level, path, 7, msg, None, None))

app.run(main)
"""


@pytest.mark.parametrize("argv,expected", [
    ([], ["[tfadvgan] ours info", "[tfadvgan] warning: ours warning", "W* x.py:7] theirs warning"]),
    (["--verbosity=-1"], ["W* common.py:7] ours warning", "W* x.py:7] theirs warning"]),
])
def test_scripts_show_the_librarys_log_lines(argv, expected):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", _LOGGING_SCRIPT] + argv, capture_output=True,
                        text=True, cwd=ROOT, env=env, timeout=60, check=True)
  lines = [re.sub(r"^W\d{4} [^ ]+ +\d+ ", "W* ", l) for l in proc.stderr.splitlines()]
  assert lines == expected, proc.stderr
