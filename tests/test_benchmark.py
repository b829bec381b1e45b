"""The benchmark's references (the hand-written step, the compiled-convolution count) and the CI
gates built on them."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadvgan import errors
from tfadvgan.training import benchmark
from tfadvgan.training import benchmark_gates

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "gin_configs/dat/dcgan_fmnist.gin")
DAT = os.path.join(ROOT, "gin_configs/dat/dat_dcgan_fmnist.gin")


def _npz(tmp_path, n=32, shape=(32, 32, 1)):
  rng = np.random.default_rng(7)
  path = str(tmp_path / "data.npz")
  np.savez(path, images=rng.integers(0, 256, (n,) + shape).astype(np.uint8),
           labels=(np.arange(n) % 10).astype(np.int64))
  return path


def _params(tmp_path, *extra):
  return ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
          "dataset.source = 'npz'", f"dataset.path = '{_npz(tmp_path)}'", *extra]


def _weights(gan):
  return [np.array(v) for v in gan.generator.weights + gan.discriminator.weights]


# Slow (16 s in the quick suite): it checks the benchmark's reference step, which CI's
# `scripts/benchmark.py --ci` runs after the tests; the framework's step has its own closed-form
# checks in the quick suite (tests/test_gan.py).
@pytest.mark.slow
@pytest.mark.parametrize("loss", ["non_saturating", "hinge"])
def test_reference_step_makes_the_framework_update(tmp_path, loss):
  """From the same weights and batch, one hand-written step and one framework step leave G and D
  (BN statistics included) with the same weights: the reference is the same step, written out.
  SGD at a large rate, so that the weights follow the gradients' size, not only their signs."""
  gan, _, _, ds = benchmark.prepare(
      [BASE], _params(tmp_path, f"GAN.loss = '{loss}'", "GAN.n_dis = 2",
                      "make_optimizer.name = 'sgd'", "make_optimizer.learning_rate = 0.5"))
  batch = next(iter(ds))
  start = _weights(gan)
  d_loss, _ = benchmark.reference_step(gan)(batch)
  by_reference = _weights(gan)
  for variable, value in zip(gan.generator.weights + gan.discriminator.weights, start):
    variable.assign(value)
  logs = tf.function(gan.train_step, jit_compile=True)(batch)  # what the engine compiles
  by_framework = _weights(gan)
  moved = [np.abs(a - b).max() for a, b in zip(by_framework, start)]
  assert max(moved) > 1e-2  # the step moved the weights
  for a, b in zip(by_reference, by_framework):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # The framework's d_loss is the mean over its n_dis updates; the reference returns the last.
  assert np.isfinite(float(d_loss)) and np.isfinite(float(logs["d_loss"]))


def test_reference_step_refuses_what_it_does_not_write_out(tmp_path):
  gan, _, _, _ = benchmark.prepare([DAT], _params(tmp_path))
  with pytest.raises(errors.ConfigError, match="unconditional baseline"):
    benchmark.reference_step(gan)
  gan, _, _, _ = benchmark.prepare([BASE], _params(tmp_path, "GAN.loss = 'least_squares'"))
  with pytest.raises(errors.ConfigError, match="no 'least_squares' loss"):
    benchmark.reference_step(gan)


def _layers(network, kinds):
  return sum(isinstance(layer, kinds) for layer in network._flatten_layers(include_self=False))  # pylint: disable=protected-access


# Slow (22 s in the quick suite): a count of the benchmark's, for its DAT-overhead figure.
@pytest.mark.slow
@pytest.mark.parametrize("n_dis", [1, 2])
def test_compiled_convolutions_count_the_passes(tmp_path, n_dis):
  """The count of the baseline and DAT steps, against the pass count by hand.

  With L conv layers in D and M in G: a D update runs G forward (M), D forward and weight
  backward on reals and fakes (2L + 2L) and D's activation backward below its top layer
  (2(L - 1)); the G update runs G forward (M), D forward (L), D's backward to the image (L) and
  G's activation and weight backward (2M). DAT's D update adds the attacked terms' passes
  (6L - 2) and the attack gradients' backward to the image on reals and fakes (2L): the clean
  pass's tape holds the forward, but the attack differentiates another function of the logits.
  """
  counts = {}
  for name, config in (("base", BASE), ("dat", DAT)):
    gan, _, _, ds = benchmark.prepare([config], _params(tmp_path, f"GAN.n_dis = {n_dis}"))
    counts[name] = benchmark.compiled_convolutions(gan, next(iter(ds)))
    conv_d = _layers(gan.discriminator, keras.layers.Conv2D)
    conv_g = _layers(gan.generator, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
  assert conv_d >= 2 and conv_g >= 2
  d_update, g_update = conv_g + 6 * conv_d - 2, 3 * conv_g + 2 * conv_d
  assert counts["base"] == n_dis * d_update + g_update
  assert counts["dat"] == counts["base"] + n_dis * (8 * conv_d - 2)


@pytest.mark.slow  # 40-80 s; CI runs the real check (scripts/benchmark.py --ci) after the tests
def test_ci_check_computes_its_ratios_and_gates(tmp_path, monkeypatch):
  """The ratios come from the rows of one run (checked here from the rows themselves), and each
  gate fails exactly when its ratio exceeds it."""
  params = _params(tmp_path, "dataset.num_examples = 32", "train.diagnose_every_steps = 0")
  monkeypatch.setattr(benchmark_gates, "GATES", {"framework_vs_reference": 1e-3,
                                                 "method_vs_floor": 1e3, "end_to_end_ratio": 1e3})
  results, ratios, failures = benchmark_gates.ci_check([BASE], [DAT], params, steps=2,
                                                       warmup=2, chunk=2)
  base, method, ref = results
  assert ref["name"].startswith("reference (hand-written)")
  med = lambda r: r["median_ms_per_step"]  # noqa: E731
  assert ratios["framework_vs_reference"] == pytest.approx(med(base) / med(ref))
  assert ratios["method_vs_baseline"] == pytest.approx(med(method) / med(base))
  assert ratios["method_floor"] == pytest.approx(method["convolutions"] / base["convolutions"])
  assert ratios["method_floor"] > 1.0
  assert ratios["method_vs_floor"] == pytest.approx(ratios["method_vs_baseline"]
                                                    / ratios["method_floor"])
  assert ratios["end_to_end_ratio"] == pytest.approx(base["end_to_end_ms_per_step"]
                                                     / base["isolated_ms_per_step"])
  first, second = ratios["attempts"]  # the gate exceeded, so it was measured again
  assert second["framework_vs_reference"] == ratios["framework_vs_reference"]
  assert failures == [f"framework_vs_reference = {first['framework_vs_reference']:.2f} then "
                      f"{second['framework_vs_reference']:.2f} > 0.001"]


def _measured(*end_to_end_ratios):
  """A `_ci_measure` replacement returning, call by call, ratios under every gate but
  `end_to_end_ratio`, which takes the given values in turn (so the gate logic is tested alone)."""
  calls = []

  def measure(*args):
    del args
    calls.append(len(calls))
    ratios = {"framework_vs_reference": 1.07, "method_vs_baseline": 1.52, "method_floor": 1.65,
              "method_vs_floor": 0.92, "end_to_end_ratio": end_to_end_ratios[len(calls) - 1]}
    return [{"name": "baseline"}], ratios
  return measure, calls


@pytest.mark.parametrize("values,measurements,failures", [
    ((0.99,), 1, []),                                            # passes: measured once
    ((1.36, 0.97), 2, []),                                       # a slow minute: passes
    ((1.36, 1.31), 2, ["end_to_end_ratio = 1.36 then 1.31 > 1.25"]),  # repeats: fails
])
def test_ci_check_fails_a_gate_only_when_a_second_measurement_exceeds_it(
    monkeypatch, values, measurements, failures):
  measure, calls = _measured(*values)
  monkeypatch.setattr(benchmark_gates, "_ci_measure", measure)
  _, ratios, got = benchmark_gates.ci_check([BASE], [DAT])
  assert len(calls) == measurements
  assert [m["end_to_end_ratio"] for m in ratios["attempts"]] == list(values)
  assert ratios["end_to_end_ratio"] == values[-1]
  assert got == failures


def test_ci_check_needs_every_measurement_over_the_same_gate(monkeypatch):
  """One gate over in the first measurement and another in the second fail neither."""
  values = iter([{"end_to_end_ratio": 1.30, "method_vs_floor": 0.90},
                 {"end_to_end_ratio": 1.00, "method_vs_floor": 1.20}])

  def measure(*args):
    del args
    return [], dict({"framework_vs_reference": 1.0, "method_vs_baseline": 1.5,
                     "method_floor": 1.65}, **next(values))
  monkeypatch.setattr(benchmark_gates, "_ci_measure", measure)
  _, ratios, failures = benchmark_gates.ci_check([BASE], [DAT], attempts=2)
  assert len(ratios["attempts"]) == 2 and failures == []


def test_ci_flag_wants_a_baseline_and_a_method():
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "benchmark.py"), "--ci",
                         f"--config={BASE}"], capture_output=True, text=True, cwd=ROOT,
                        timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "--ci takes exactly two --config" in proc.stderr
  assert "Traceback" not in proc.stderr
