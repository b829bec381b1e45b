"""The performance gates CI runs after the tests (docs/results/performance.md, "Performance in
CI").

`ci_check` times a baseline config, a method config on it and the hand-written reference step
(`benchmark.reference_step`) interleaved in one process, counts their compiled convolutions, and
trains the baseline end to end against its isolated step; each ratio has a gross-regression gate.
"""

from tfadvgan import errors
from tfadvgan.training import benchmark


# Gross-regression gates of `ci_check` (docs/results/performance.md, "Performance in CI").
# The method gate is taken against the method's own pass-count floor: DAT's floor (the
# convolutions its step must run, 1.65x the baseline's for DCGAN) is above the 1.40 first named
# as a ceiling, so a fixed ratio would fail on every machine.
GATES = {"framework_vs_reference": 1.15, "method_vs_floor": 1.15, "end_to_end_ratio": 1.25}


def ci_check(baseline_files, method_files, params=(), steps=20, warmup=3, chunk=5, rounds=2,
             attempts=2):
  """The CI benchmark: one process, the framework, method and end-to-end ratios and their gates.

  Times the baseline config, the method config and the hand-written reference step (on the
  baseline's networks) interleaved, counts each config's compiled convolutions, then trains the
  baseline end to end in `rounds` rounds interleaved with its isolated step
  (`benchmark.end_to_end`). `params` (gin bindings) apply to both configs.

  A gate exceeded is measured again, up to `attempts` measurements in all, and fails only when
  every measurement exceeds it: a gross regression repeats, while a shared CI host that slows
  for a minute does not (docs/results/performance.md, "Performance in CI").

  Returns:
    (results, ratios, failures): the last measurement's `benchmark.run` rows (the end-to-end
    figures on the baseline's) and ratios (`framework_vs_reference`, `method_vs_baseline`,
    `method_floor` (convolution ratio), `method_vs_floor`, `end_to_end_ratio`, and `attempts`:
    every measurement's ratios, in order); one line per gate exceeded in every measurement.
  """
  errors.check(isinstance(attempts, int) and attempts >= 1, "ci_check attempts must be >= 1.")
  measured = []
  while True:
    results, ratios = _ci_measure(baseline_files, method_files, list(params), steps, warmup,
                                  chunk, rounds)
    measured.append(ratios)
    exceeded = [key for key, limit in GATES.items()
                if all(m[key] > limit for m in measured)]
    if not exceeded or len(measured) == attempts:
      break
  failures = [f"{key} = " + " then ".join(f"{m[key]:.2f}" for m in measured)
              + f" > {GATES[key]}" for key in exceeded]
  return results, dict(ratios, attempts=measured), failures


def _ci_measure(baseline_files, method_files, params, steps, warmup, chunk, rounds):
  """One measurement of `ci_check`: (the `run` rows, the ratios)."""
  results = benchmark.run(
      [("baseline", baseline_files, params), ("method", method_files, params)],
      steps=steps, warmup=warmup, chunk=chunk, reference=True, convolutions=True)
  base, method, ref = results
  e2e = benchmark.end_to_end(baseline_files, params, steps=max(steps, chunk),
                             warmup=max(warmup, chunk), chunk=chunk, rounds=rounds)
  base.update(e2e)
  median = lambda r: r["median_ms_per_step"]  # noqa: E731
  ratios = {"framework_vs_reference": median(base) / median(ref),
            "method_vs_baseline": median(method) / median(base),
            "method_floor": method["convolutions"] / base["convolutions"],
            "end_to_end_ratio": e2e.get("end_to_end_ratio",
                                        e2e["end_to_end_ms_per_step"] / median(base))}
  ratios["method_vs_floor"] = ratios["method_vs_baseline"] / ratios["method_floor"]
  base["end_to_end_ratio"] = ratios["end_to_end_ratio"]
  return results, ratios
