r"""Times the compiled train step of several configs in one process, interleaved.

  python scripts/benchmark.py --config=gin_configs/base/dcgan_fmnist.gin \
      --config=gin_configs/as_gan/as_dcgan_fmnist.gin --steps=50 --warmup=5 --out=bench.json

Each --config is a gin file, or several joined with '+' (applied in order). --gin_param applies to
every config; --param_for='2:train.batch_size = 32' only to the 2nd. Prints a table (median ms/step
with min and max, images/s, ratio to the first config) and writes the same fields as JSON.
Policies compare in one run:  --with_params='bf16|train.mixed_precision = "bfloat16"'.

--input=DIR measures the input path instead (decodes per trained image for 1, 2, 4 input
pipelines, images/s on one core, folder start-up time) on generated image folders kept in DIR.

--reference adds the hand-written minimal XLA step on the first config's networks as a last row;
--convolutions adds how many convolutions each config's compiled step holds (its pass count).
--ci runs CI's check: the first --config is a baseline, the second a method on it; prints the
ratios framework / hand-written step, method / baseline against its convolution floor, and end to
end / isolated step, and exits with status 1 when one exceeds its gate (benchmark_gates.GATES)
in two measurements (a gate exceeded once is measured again).
"""

import json

from absl import flags

from tfadvgan.cli import common

flags.DEFINE_multi_string("config", [], "Gin file(s) of one config ('a.gin+b.gin'); repeat.")
flags.DEFINE_multi_string("gin_param", [], "Gin binding applied to every config.")
flags.DEFINE_multi_string("param_for", [], "'I:binding' applies a binding to config I (1-based).")
flags.DEFINE_multi_string("with_params", [], "'NAME|b1|b2' adds a config NAME made of the "
                          "first --config plus bindings b1, b2 (e.g. an XLA on/off pair).")
flags.DEFINE_integer("steps", 50, "Timed steps per config.")
flags.DEFINE_integer("warmup", 5, "Untimed steps per config (includes compilation).")
flags.DEFINE_integer("chunk", 5, "Steps per config per interleaving round.")
flags.DEFINE_integer("batch_size", None, "Override train.batch_size (default: each config's).")
flags.DEFINE_string("shape", None, "H,W,C of random data when the dataset is unavailable "
                    "(default: none; an unavailable dataset is an error).")
flags.DEFINE_string("strategy", "default", "Distribution strategy.")
flags.DEFINE_integer("cpu_devices", None, "Split the CPU into this many logical devices first "
                     "(to try --strategy=mirrored on a machine without GPUs; default: as TF "
                     "finds them).")
flags.DEFINE_enum("mixed_precision", None, ["none", "bfloat16", "float16"],
                  "train.mixed_precision of every config (default: each config's; compare "
                  "policies with --with_params).")
flags.DEFINE_string("out", None, "JSON output file (default: none, print only).")
flags.DEFINE_string("input", None, "Benchmark the input path instead of the step, on folders of "
                    "generated images kept in this directory: decodes per trained image for "
                    "1, 2 and 4 input pipelines, images/s on one core (PNG and JPEG), and the "
                    "folder source's start-up time (first and second start). Default: none, time "
                    "the train step.")
flags.DEFINE_integer("input_startup_images", 20000, "With --input: images of the start-up "
                     "folder (0 skips it).")
flags.DEFINE_bool("end_to_end", False, "Also train the first config for --warmup + --steps steps "
                  "with its real input pipeline and callbacks (train.py's loop), and report its "
                  "ms/step and the ratio to the isolated step (end_to_end_ms_per_step, "
                  "end_to_end_ratio).")
flags.DEFINE_enum("end_to_end_input", "real", ["real", "cached"], "With --end_to_end: the "
                  "config's real input pipeline, or its first batch repeated (as the isolated "
                  "step reads), to measure what the pipeline costs.")
flags.DEFINE_integer("end_to_end_rounds", 1, "With --end_to_end: alternate the isolated step "
                     "and training this many times, and take the ratio from those interleaved "
                     "timings (this machine's speed drifts between minutes).")
flags.DEFINE_bool("profile", False, "With --end_to_end: run the training under cProfile and "
                  "report the host's milliseconds per step outside the compiled calls.")
flags.DEFINE_bool("reference", False, "Add the hand-written reference step on the first "
                  "config's networks (a baseline config) as a last row.")
flags.DEFINE_bool("convolutions", False, "Report the convolutions in each config's compiled "
                  "step (one device, XLA).")
flags.DEFINE_bool("ci", False, "CI's check: --config=BASELINE --config=METHOD; exits 1 when a "
                  "ratio exceeds its gate.")
FLAGS = flags.FLAGS


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import benchmark  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.input:
    _input_benchmark()
    return
  errors.check(FLAGS.config, "Give at least one --config.")
  errors.check(FLAGS.end_to_end or not (FLAGS.profile or FLAGS.end_to_end_input != "real"
                                        or FLAGS.end_to_end_rounds != 1),
               "--profile, --end_to_end_input and --end_to_end_rounds apply to --end_to_end: "
               "add it.")
  configs = _configs()
  shape = tuple(int(s) for s in FLAGS.shape.split(",")) if FLAGS.shape else None
  if FLAGS.cpu_devices:
    _split_cpu(FLAGS.cpu_devices)
  if FLAGS.ci:
    _ci_check()
    return
  results = benchmark.run(configs, steps=FLAGS.steps, warmup=FLAGS.warmup, chunk=FLAGS.chunk,
                          shape=shape, batch_size=FLAGS.batch_size, strategy=FLAGS.strategy,
                          reference=FLAGS.reference, convolutions=FLAGS.convolutions)
  print(format_table(results))
  if FLAGS.end_to_end:
    _end_to_end(configs[0], results[0])
  _write(results)


def _input_benchmark():
  """--input: the input path's benchmark (`tfadvgan.data.throughput`)."""
  from tfadvgan.data import throughput  # pylint: disable=g-import-not-at-top
  result = throughput.input_benchmark(FLAGS.input, startup_images=FLAGS.input_startup_images)
  print(throughput.format_input_benchmark(result))
  _write(result)


def _configs():
  """[(name, [gin files], [gin params])]: each --config with --gin_param, --mixed_precision and
  its --param_for, then each --with_params on the first --config."""
  common_params = list(FLAGS.gin_param)
  if FLAGS.mixed_precision:
    common_params.append(f"train.mixed_precision = '{FLAGS.mixed_precision}'")
  configs = []
  for i, spec in enumerate(FLAGS.config, start=1):
    extra = [p.split(":", 1)[1] for p in FLAGS.param_for if p.split(":", 1)[0] == str(i)]
    configs.append((spec, spec.split("+"), common_params + extra))
  for spec in FLAGS.with_params:
    name, *bindings = spec.split("|")
    configs.append((name, FLAGS.config[0].split("+"), common_params + bindings))
  return configs


def _split_cpu(devices):
  """Splits the CPU into `devices` logical devices (before TensorFlow initialises them)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  errors.check(devices >= 1, "--cpu_devices must be >= 1.")
  tf.config.set_logical_device_configuration(
      tf.config.list_physical_devices("CPU")[0],
      [tf.config.LogicalDeviceConfiguration()] * devices)


def _ci_check():
  """--ci: `benchmark_gates.ci_check` on the two configs; exits 1 when a ratio exceeds its gate."""
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import benchmark_gates  # pylint: disable=g-import-not-at-top
  errors.check(len(FLAGS.config) == 2 and not (FLAGS.gin_param or FLAGS.param_for
                                                or FLAGS.with_params or FLAGS.end_to_end),
               "--ci takes exactly two --config (a baseline, then a method on it) and no "
               "other bindings.")
  results, ratios, failures = benchmark_gates.ci_check(
      FLAGS.config[0].split("+"), FLAGS.config[1].split("+"), steps=FLAGS.steps,
      warmup=FLAGS.warmup, chunk=FLAGS.chunk)
  print(format_table(results))
  attempts = ratios["attempts"]
  if len(attempts) > 1:
    print(f"a gate was exceeded: measured {len(attempts)} times; each gate fails only when "
          "every measurement exceeds it")
  for key in attempts[-1]:
    limit = benchmark_gates.GATES.get(key)
    print(f"{key:24s} " + " ".join(f"{m[key]:6.2f}" for m in attempts)
          + (f"  (gate {limit})" if limit else ""))
  _write({"results": results, "ratios": ratios, "failures": failures})
  if failures:
    raise SystemExit("benchmark gates exceeded: " + "; ".join(failures))


def _end_to_end(first_config, first_row):
  """--end_to_end: trains the first config (`benchmark.end_to_end`); its figures join its row."""
  from tfadvgan.training import benchmark  # pylint: disable=g-import-not-at-top
  name, files, params = first_config
  e2e = benchmark.end_to_end(files, params, steps=FLAGS.steps, warmup=FLAGS.warmup,
                             chunk=FLAGS.chunk, input_pipeline=FLAGS.end_to_end_input,
                             profile=FLAGS.profile, rounds=FLAGS.end_to_end_rounds)
  if "end_to_end_ratio" not in e2e:  # one round: against the step timed above
    e2e["end_to_end_ratio"] = e2e["end_to_end_ms_per_step"] / first_row["median_ms_per_step"]
  first_row.update(e2e)
  print(f"end to end ({name}, train.py's loop): {e2e['end_to_end_ms_per_step']:.2f} ms/step, "
        f"{e2e['end_to_end_ratio']:.2f}x the isolated step ({FLAGS.end_to_end_input} input)")
  if FLAGS.profile:
    print(f"host per step outside the compiled calls: "
          f"{e2e['profile_host_ms_per_step']:.2f} ms (callbacks "
          f"{e2e['profile_callbacks_ms_per_step']:.2f} ms), under cProfile")


def _write(value):
  """Writes `value` as JSON to --out (when given)."""
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  if FLAGS.out:
    storage.atomic_write(FLAGS.out, json.dumps(value, indent=2))
    print(f"wrote {FLAGS.out}")


def format_table(results):
  """The results table: median / min / max ms per step, images/s, ratio to the first config (and
  the compiled convolutions when measured)."""
  convs = any("convolutions" in r for r in results)
  head = f"{'config':40s} {'median ms':>10s} {'min':>8s} {'max':>8s} {'img/s':>9s} {'ratio':>6s}"
  head += f" {'convs':>6s}" if convs else ""
  rows = [head, "-" * len(head)]
  for r in results:
    rows.append(f"{r['name'][:40]:40s} {r['median_ms_per_step']:10.2f} "
                f"{r['min_ms_per_step']:8.2f} {r['max_ms_per_step']:8.2f} "
                f"{r['images_per_sec']:9.1f} {r['ratio_to_first']:6.2f}"
                + (f" {r.get('convolutions', ''):>6}" if convs else ""))
  return "\n".join(rows)


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
