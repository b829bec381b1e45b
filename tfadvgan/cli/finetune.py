r"""Rob-GAN step 2: fine-tunes the discriminator's auxiliary classifier (Eq. 10).

  python scripts/finetune.py --model_dir=RUN --out_dir=RUN_finetuned \
      [--gin_file=FILE] [--gin_param='finetune_classifier.stage_steps = (4000, 2000, 2000, 1000)'] \
      [--gin_param='finetune_classifier.fake_weight = 0.5'] \
      [--gin_param="dataset.path = '/moved/data'"]

Restores the trained run in --model_dir, fine-tunes D's classifier head on the run's own training
data (Eq. 10: CE on PGD-attacked reals + fake_weight * CE on PGD-attacked fakes of the frozen G)
and writes --out_dir (new or empty, never --model_dir) as a run directory that train.py's tools
restore; a failed or interrupted fine-tune leaves nothing there. Check the result with

  python scripts/diagnose.py --model_dir=RUN_finetuned --which=class_pgd

This module is flags and wiring; what the run writes is in tfadvgan/training/finetune_run.py, the
fine-tuner and its readings of the paper and the release in tfadvgan/training/finetune.py (and
docs/readings/robgan.md).
"""

import sys

from tfadvgan.cli import common  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow is imported


# ------------------------------------------------------------------- command line
def _define_flags():
  """Defined when the script runs, not on import (the library part is imported by tests and
  other modules that define flags of the same names)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if "out_dir" in flags.FLAGS:
    return
  flags.DEFINE_string("model_dir", None, "Trained run directory (train.py's --model_dir; "
                      "required).")
  flags.DEFINE_string("out_dir", None, "New run directory for the fine-tuned model (required; "
                      "must differ from --model_dir; new or empty).")
  common.define_gin_flags()


@common.main_wrapper
def main(argv):
  from tfadvgan import errors  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import finetune_run  # pylint: disable=g-import-not-at-top
  flags_ = common.FLAGS
  errors.check(len(argv) == 1, f"Unexpected arguments: {' '.join(argv[1:])}")
  errors.check(flags_.model_dir, "--model_dir is required: the trained run to fine-tune.")
  errors.check(flags_.out_dir, "--out_dir is required: a new directory for the fine-tuned run.")
  try:
    summary = finetune_run.finetune_run(flags_.model_dir, flags_.out_dir,
                                        list(flags_.gin_param), gin_files=list(flags_.gin_file))
  except KeyboardInterrupt:
    print(f"\ninterrupted: nothing was written to {flags_.out_dir}.", file=sys.stderr)
    sys.exit(130)
  final = ", ".join(f"{k} {v:.4g}" for k, v in sorted(summary["final"].items()))
  print(f"fine-tuned {summary['steps']} steps from {summary['source_checkpoint']}: {final}")


def run():
  _define_flags()
  common.run(main, __name__)


if __name__ == "__main__":
  run()
