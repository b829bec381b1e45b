"""Runs a study of variants x seeds: see tfadvgan/cli/study.py."""
from tfadvgan.cli.study import run

if __name__ == "__main__":
  run()
