"""What the command-line scripts print: one `error:` line for bad input, no TF start-up noise, and
the paths of their outputs at the end.

The subprocesses run without TF_CPP_MIN_LOG_LEVEL (conftest sets it for the test process), as a
user's shell would. The run-directory tests (sample, eval, diagnose) train a 2-step run first and
are marked slow.
"""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from tfadvgan.cli import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "scripts", "*.py")))
DEMO = os.path.join(ROOT, "gin_configs", "demo.gin")
# What TF 2.21 printed before (5 lines on a machine without a GPU); none of it may appear.
NOISE = re.compile(r"InitializeLog|cudart_stub|cuInit|cpu_feature_guard|^[IWE]\d{4} ")


def _env(**extra):
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  env.pop("TFADVGAN_TF_CPP_MIN_LOG_LEVEL", None)
  env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
  env.update(extra)
  return env


def _run(script, args, env=None, timeout=600):
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", f"{script}.py")] + args,
                        capture_output=True, text=True, cwd=ROOT, env=env or _env(),
                        timeout=timeout, check=False)


def _one_error_line(proc):
  """Exit status 2 and exactly one stderr line, `error: ...`, with no traceback or TF noise."""
  lines = proc.stderr.splitlines()
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
  return lines[0][len("error: "):]


# ----------------------------------------------------------------- start-up noise (no TF needed)
def test_every_script_has_a_quiet_help():
  assert len(SCRIPTS) >= 8, SCRIPTS
  for script in SCRIPTS:
    proc = _run(script, ["--help"])
    assert proc.stderr == "", (script, proc.stderr)
    assert "Try --helpfull" in proc.stdout, (script, proc.stdout)


def test_filter_drops_only_known_startup_lines():
  code = ("import os, sys\n"
          "from tfadvgan.cli import common\n"
          "with common._FilteredStderr():\n"  # pylint: disable=protected-access
          "  os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
          "written to STDERR\\n')\n"
          "  os.write(2, b'I0000 00:00:1 1 cudart_stub.cc:31] Could not find cuda drivers on your "
          "machine, GPU will not be used.\\n')\n"
          "  os.write(2, b'E0000 00:00:1 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
          "UNKNOWN ERROR (303)\\n')\n"
          "  os.write(2, b'a real problem\\n')\n"
          "  print('python too', file=sys.stderr)\n"
          "print('after', file=sys.stderr)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(),
                        cwd=ROOT, timeout=60, check=False)
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == "a real problem\npython too\nafter\n"


@pytest.mark.parametrize("argv,env_level,expected", [
    ([], None, "2 hook"),                       # quiet by default
    (["--verbosity=0"], None, "0 no-hook"),     # INFO asked for: TF's own logs too
    (["-v", "1"], None, "0 no-hook"),
    (["--verbosity", "1"], None, "0 no-hook"),
    (["--verbosity=-1"], None, "2 hook"),       # WARNING is the default anyway
    ([], "1", "1 no-hook"),                     # the user's TF_CPP_MIN_LOG_LEVEL wins
    (["-v", "1"], "3", "3 no-hook"),
    ([], "2+mark", "2 hook"),                   # inherited from a parent script (study.py)
    (["-v", "1"], "0+mark", "0 no-hook"),
])
def test_verbosity_and_user_log_level_are_respected(argv, env_level, expected):
  code = ("import os, sys\n"
          f"sys.argv = ['x'] + {argv!r}\n"
          "from tfadvgan.cli import common\n"
          "hook = any(type(f).__name__ == '_QuietTensorFlowImport' for f in sys.meta_path)\n"
          "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], 'hook' if hook else 'no-hook')\n")
  env = _env()
  if env_level:
    level = env_level.split("+")[0]
    env["TF_CPP_MIN_LOG_LEVEL"] = level
    env["TFADVGAN_TF_CPP_MIN_LOG_LEVEL"] = level if env_level.endswith("+mark") else "x"
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=60, check=False)
  assert proc.stdout.strip() == expected, proc.stderr


def test_argv_verbosity():
  assert common.argv_verbosity(["x", "--verbosity=2"]) == 2
  assert common.argv_verbosity(["x", "-v", "1", "--model_dir=a"]) == 1
  assert common.argv_verbosity(["x", "--v=0"]) == 0
  assert common.argv_verbosity(["x", "--model_dir=v"]) is None
  assert common.argv_verbosity(["x", "--", "-v", "1"]) is None


# ----------------------------------------------------------------- bad input: one line, exit 2
@pytest.mark.parametrize("param,expected", [
    ("train.num_step = 2", "Unknown gin binding train.num_step (in --gin_param 'train.num_step = "
     "2'): train has no parameter 'num_step'; did you mean train.num_steps?"),
    ("ASGAN.epsilon = nan", "Bad gin value 'nan' in --gin_param 'ASGAN.epsilon = nan': gin has no "
     "nan/inf literal, and hyperparameters must be finite. Write a finite number, e.g. "
     "ASGAN.epsilon = 0.01."),
])
def test_bad_binding_is_one_quiet_line(tmp_path, param, expected):
  model_dir = tmp_path / "run"
  proc = _run("train", [f"--gin_file={DEMO}", f"--model_dir={model_dir}", f"--gin_param={param}"])
  assert _one_error_line(proc) == expected
  assert not model_dir.exists()


def test_inf_epsilon_is_refused_before_the_run_dir_exists(tmp_path):
  model_dir = tmp_path / "run"
  proc = _run("train", [f"--gin_file={DEMO}", f"--model_dir={model_dir}",
                        "--gin_param=build_gan.method = 'as_gan'",
                        "--gin_param=ASGAN.epsilon = 1e999", "--gin_param=train.num_steps = 2"])
  assert (_one_error_line(proc)
          == "ASGAN.epsilon must be >= 0 (a finite number); got inf, which is not finite.")
  assert not model_dir.exists()
  assert proc.stdout == ""


@pytest.mark.slow  # the same message in-process: test_validation.py
def test_scoped_learning_rate_names_the_binding(tmp_path):
  proc = _run("train", [f"--gin_file={DEMO}", f"--model_dir={tmp_path / 'run'}",
                        "--gin_param=D/make_optimizer.learning_rate = -1",
                        "--gin_param=train.num_steps = 2"])
  assert (_one_error_line(proc)
          == "D/make_optimizer.learning_rate must be > 0 (a finite number); got -1. Set "
             "D/make_optimizer.learning_rate (or make_optimizer.learning_rate for both networks).")
  assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- end of command: output paths
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A 2-step demo run (eager, narrow nets) on Fashion-MNIST."""
  if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
    pytest.skip("needs the Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist")
  model_dir = str(tmp_path_factory.mktemp("cli") / "run")
  proc = _run("train", [f"--gin_file={DEMO}", f"--model_dir={model_dir}",
                        "--gin_param=train.num_steps = 2", "--gin_param=train.batch_size = 8",
                        "--gin_param=train.log_every_steps = 1",
                        "--gin_param=train.sample_every_steps = 2",
                        "--gin_param=train.checkpoint_every_steps = 2",
                        "--gin_param=build_generator.width = 8",
                        "--gin_param=build_discriminator.width = 8",
                        "--gin_param=build_gan.run_eagerly = True"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not [l for l in proc.stderr.splitlines() if NOISE.search(l)], proc.stderr
  with open(os.path.join(model_dir, "run.json")) as f:
    assert json.load(f)["shape"] == [32, 32, 1]
  return model_dir


def _quiet(proc):
  assert proc.returncode == 0, proc.stderr[-3000:]
  noise = [l for l in proc.stderr.splitlines() if NOISE.search(l)]
  assert not noise, proc.stderr
  return proc.stdout.splitlines()


@pytest.mark.slow
def test_sample_says_where_the_grid_and_npz_are(run_dir, tmp_path):
  out = tmp_path / "samples"
  lines = _quiet(_run("sample", [f"--model_dir={run_dir}", "--num=6", f"--out={out}"]))
  ckpt = os.path.join(run_dir, "checkpoints", "ckpt-2")
  assert lines[-3:] == [f"restored {ckpt}; wrote 6 samples",
                        f"  PNG grid:  {out / 'grid_000.png'}",
                        f"  npz:       {out / 'samples.npz'}"]
  assert (out / "grid_000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (out / "samples.npz").stat().st_size > 6 * 32 * 32 * 4


@pytest.mark.slow
def test_diagnose_says_where_json_and_pngs_are(run_dir, tmp_path):
  out = tmp_path / "diag"
  lines = _quiet(_run("diagnose", [f"--model_dir={run_dir}", "--num=8", "--batch_size=8",
                                   "--which=accuracy,gradients", f"--out={out}"]))
  ckpt = os.path.join(run_dir, "checkpoints", "ckpt-2")
  names = ["gradient_grid_step2.png", "gradient_inputs_step2.png", "gradient_histogram_step2.png"]
  assert lines[-5:] == ([f"restored {ckpt}; diagnostics of step 2",
                         f"  JSON:  {out / 'diagnostics_step2.json'}"]
                        + [f"  PNG:   {out / n}" for n in names])
  with open(out / "diagnostics_step2.json") as f:
    assert json.load(f)["step"] == 2


@pytest.mark.slow
def test_eval_says_where_results_are_and_the_tensorboard_command(run_dir, tmp_path):
  lines = _quiet(_run("eval", [f"--model_dir={run_dir}", "--classifier=domain",
                               "--classifier_path=classifiers/fmnist_cnn.keras",
                               "--num_samples=16", "--metrics=is", f"--cache_dir={tmp_path}"]))
  results = os.path.join(run_dir, "eval", "results.json")
  assert lines[-3:] == ["evaluated 1 checkpoint(s) with 'fmnist_cnn' on 16 samples",
                        f"  results:      {results}",
                        f"  TensorBoard:  tensorboard --logdir {run_dir}"]
  assert os.path.exists(results)


@pytest.mark.slow
def test_eval_without_inception_gives_the_domain_classifier_command(run_dir):
  # A local handle that does not exist: the same failure as offline, without any network access.
  proc = _run("eval", [f"--model_dir={run_dir}", "--num_samples=16",
                       "--gin_param=get_classifier.hub_handle = '/nonexistent/inception'"])
  message = _one_error_line(proc)
  # The demo reads `idx` at its default path (dataset.path unset): eval knows its shape, not its
  # name, so it offers the command for 28/32 px grayscale data.
  assert message.endswith(
      "This run's data is 28/32 px grayscale: the shipped domain classifier (trained on "
      f"Fashion-MNIST) works offline: python scripts/eval.py --model_dir={run_dir} "
      "--classifier=domain --classifier_path=classifiers/fmnist_cnn.keras --num_samples=16 "
      "(for other data, train one with scripts/train_classifier.py)."), message
  assert "/nonexistent/inception" in message
