r"""Rob-GAN step 2, fine-tuning D's classifier (Eq. 10): see tfadvgan/cli/finetune.py.

  python scripts/finetune.py --model_dir=RUN --out_dir=RUN_finetuned \
      [--gin_param='finetune_classifier.stage_steps = (4000, 2000, 2000, 1000)'] \
      [--gin_param='finetune_classifier.fake_weight = 0.5'] [--gin_file=FILE]
  python scripts/diagnose.py --model_dir=RUN_finetuned --which=class_pgd
"""
from tfadvgan.cli.finetune import run

if __name__ == "__main__":
  run()
