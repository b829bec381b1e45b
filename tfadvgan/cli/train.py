r"""Trains a GAN from gin configs.

  python scripts/train.py --gin_file=gin_configs/demo.gin --model_dir=/tmp/demo \
      [--gin_param='train.num_steps = 2000'] [--strategy=mirrored] [--mixed_precision=bfloat16]

Re-running the same command resumes from the latest checkpoint in --model_dir.

Exit status: 0 finished (at train.num_steps); 75 stopped early with a checkpoint, run the same
command again to continue (SIGTERM, Ctrl-C, preemption, train.max_seconds, a dead peer); 2 bad
input (including a second process writing the same --model_dir, or workers started with different
configs).
"""

import sys

from absl import flags

from tfadvgan.cli import common

flags.DEFINE_string("model_dir", None, "Run directory (checkpoints, TensorBoard, samples; "
                    "required).")
flags.DEFINE_enum("strategy", None, ["default", "mirrored", "multi_worker", "tpu"],
                  "Distribution strategy (default: train.strategy of the "
                  "config).")
flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu ('local' on a TPU VM; "
                    "default: train.tpu).")
flags.DEFINE_integer("eval_every", None, "Evaluate FID/IS every N steps with the default "
                     "classifier for the data, keeping the best checkpoint (default: "
                     "train.eval_every_steps of the config).")
flags.DEFINE_enum("mixed_precision", None, ["none", "bfloat16", "float16"],
                  "16-bit compute with float32 variables (default: "
                  "train.mixed_precision of the config).")
common.define_gin_flags()
FLAGS = flags.FLAGS


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as run_lib  # pylint: disable=g-import-not-at-top
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(FLAGS.model_dir, "--model_dir is required.")
  params = list(FLAGS.gin_param)
  if FLAGS.strategy:
    params.append(f"train.strategy = '{FLAGS.strategy}'")
  if FLAGS.tpu:
    params.append(f"train.tpu = '{FLAGS.tpu}'")
  if FLAGS.mixed_precision:
    params.append(f"train.mixed_precision = '{FLAGS.mixed_precision}'")
  if FLAGS.eval_every is not None:
    params.append(f"train.eval_every_steps = {FLAGS.eval_every}")
  common.parse_gin(FLAGS.gin_file, params)
  with common.filter_peer_aborts():
    gan = run_lib.train(FLAGS.model_dir)
  if gan.stopped_early is not None:  # rerun to continue: a requeue loop or scheduler restarts it
    sys.exit(gan.stopped_early.exit_status)


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
