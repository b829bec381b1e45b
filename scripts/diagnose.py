"""Discriminator robustness / gradient diagnostics of a run: see tfadvgan/cli/diagnose.py."""
from tfadvgan.cli.diagnose import run

if __name__ == "__main__":
  run()
