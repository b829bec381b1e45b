"""Trains a GAN from gin configs: see tfadvgan/cli/train.py (also `tfadvgan-train`)."""
from tfadvgan.cli.train import run

if __name__ == "__main__":
  run()
