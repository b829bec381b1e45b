r"""Exports a trained run's generator (the EMA copy when the run keeps one) for use elsewhere.

  python scripts/export.py --model_dir=DIR [--out=DIR/export] [--step=N|best]

Writes `generator.keras` (load with `keras.models.load_model` after `import tfadvgan.models`),
`saved_model/` (plain TensorFlow: `tf.saved_model.load(path).signatures["serving_default"](z=z)`,
plus `labels=` for conditional runs; `images` float32 in [-1, 1]) and `export.json`. The export
is float32 for runs trained in bfloat16 or float16 too.
"""

from absl import flags

from tfadvgan.cli import common

flags.DEFINE_string("model_dir", None, "Run directory written by train.py (required).")
flags.DEFINE_string("out", None, "Output directory (default MODEL_DIR/export); replaced when it "
                    "holds an earlier export.")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best' (the best checkpoint kept by "
                    "in-training evaluation); default: latest.")
FLAGS = flags.FLAGS


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import export  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  path, written = export.export_run(FLAGS.model_dir, FLAGS.out, FLAGS.step)
  common.print_outputs(f"restored {path}; exported the generator",
                       [(".keras", written["keras"]), ("SavedModel", written["saved_model"]),
                        ("description", written["info"])])


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
