r"""Writes samples of a trained run: PNG grids and an npz.

  python scripts/sample.py --model_dir=DIR --num=64 --out=DIR/samples_out [--step=N|best] \
      [--label=3]

Uses the EMA generator when the run has one. The npz holds `images` (float32 in [-1, 1]) and,
for conditional runs, `labels`.
"""

from absl import flags

from tfadvgan.cli import common

flags.DEFINE_string("model_dir", None, "Run directory written by train.py (required).")
flags.DEFINE_integer("num", 64, "Number of samples.")
flags.DEFINE_string("out", None, "Output directory (default MODEL_DIR/sample_out).")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best' (the best checkpoint kept by "
                    "in-training evaluation); default: latest.")
flags.DEFINE_integer("label", None, "Class of every sample (conditional runs; default: cycle).")
flags.DEFINE_integer("seed", 0, "Noise seed.")
flags.DEFINE_integer("per_grid", 64, "Samples per PNG grid.")
FLAGS = flags.FLAGS


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import io  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import loop  # pylint: disable=g-import-not-at-top
  from tfadvgan.gans import sampling  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  gan, _, path = loop.restore_run(FLAGS.model_dir, FLAGS.step)
  samples, labels = sampling.generate(gan, FLAGS.num, FLAGS.seed, FLAGS.label)
  out = FLAGS.out or io.join(FLAGS.model_dir, "sample_out")
  npz, written = sampling.write_samples(out, samples, labels, FLAGS.per_grid)
  common.print_outputs(
      f"restored {path}; wrote {len(samples)} samples",
      [("PNG grid" if len(written) == 1 else f"PNG grid {i + 1}/{len(written)}", p)
       for i, p in enumerate(written)] + [("npz", npz)])


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
