r"""Writes samples of a trained run: PNG grids and an npz; on request, interpolation and class
sheets.

  python scripts/sample.py --model_dir=DIR --num=64 --out=DIR/samples_out [--step=N|best] \
      [--label=3] [--truncation=1.0] \
      [--interpolate=0,1,2 [--interpolation_steps=8] [--interpolation=lerp]] \
      [--class_sheet [--per_class=8]]

Uses the EMA generator when the run has one. The npz holds `images` (float32 in [-1, 1]) and,
for conditional runs, `labels`. `--truncation=t` redraws every entry of z with |z| > t inside
[-t, t] (all outputs). `--interpolate=S0,S1,...` writes `interpolation.png` (+ .npz with `z`): one
row per consecutive pair of seeds, from the first code of `--seed=S0` to that of S1 (slerp, or
lerp). `--class_sheet` (conditional runs) writes `class_sheet.png` (+ .npz): row c is class c,
column j the same code in every row.
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
flags.DEFINE_float("truncation", None, "Truncation trick: redraw entries of z with |z| > t "
                   "(default: no truncation).")
flags.DEFINE_list("interpolate", None, "Seeds (>= 2): an interpolation sheet between their codes "
                  "(default: no sheet).")
flags.DEFINE_integer("interpolation_steps", 8, "Images per interpolation row (endpoints included).")
flags.DEFINE_enum("interpolation", "slerp", ["slerp", "lerp"], "Interpolation path of z.")
flags.DEFINE_bool("class_sheet", False, "Conditional runs: a sheet with one row per class.")
flags.DEFINE_integer("per_class", 8, "Samples per class-sheet row.")
FLAGS = flags.FLAGS


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan import images as images_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as run_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan.gans import sampling  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  errors.check(FLAGS.truncation is None or FLAGS.truncation > 0,
               f"--truncation must be > 0 (the |z| threshold); got {FLAGS.truncation}.")
  gan, _, path = run_lib.restore_run(FLAGS.model_dir, FLAGS.step)
  samples, labels = sampling.generate(gan, FLAGS.num, FLAGS.seed, FLAGS.label,
                                      truncation=FLAGS.truncation)
  out = FLAGS.out or storage.join(FLAGS.model_dir, "sample_out")
  npz, written = images_lib.write_samples(out, samples, labels, FLAGS.per_grid)
  outputs = [("PNG grid" if len(written) == 1 else f"PNG grid {i + 1}/{len(written)}", p)
             for i, p in enumerate(written)] + [("npz", npz)]
  if FLAGS.interpolate:
    errors.check(all(s.strip().lstrip("-").isdigit() for s in FLAGS.interpolate),
                 f"--interpolate takes integer seeds; got {','.join(FLAGS.interpolate)}.")
    images, y, z = sampling.interpolation_sheet(
        gan, [int(s) for s in FLAGS.interpolate], FLAGS.interpolation_steps, FLAGS.interpolation,
        FLAGS.truncation, FLAGS.label)
    outputs += _write_sheet(out, "interpolation", images, y, FLAGS.interpolation_steps, z=z)
  if FLAGS.class_sheet:
    images, y = sampling.class_sheet(gan, FLAGS.per_class, FLAGS.seed, FLAGS.truncation)
    outputs += _write_sheet(out, "class_sheet", images, y, FLAGS.per_class)
  common.print_outputs(f"restored {path}; wrote {len(samples)} samples", outputs)


def _write_sheet(out, name, images, labels, columns, **arrays):
  """``out/NAME.png`` (rows of ``columns`` images) and ``out/NAME.npz``; their output lines."""
  from tfadvgan import images as images_lib  # pylint: disable=g-import-not-at-top
  from tfadvgan import storage  # pylint: disable=g-import-not-at-top
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  errors.check(images.ndim == 4, f"A {name} sheet needs image data; the run generates points.")
  png, npz = storage.join(out, f"{name}.png"), storage.join(out, f"{name}.npz")
  images_lib.write_png(png, images_lib.grid(images, columns=columns))
  extra = {} if labels is None else {"labels": labels}
  storage.save_npz(npz, images=images, **extra, **arrays)
  return [(f"{name} sheet", png), (f"{name} npz", npz)]


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
