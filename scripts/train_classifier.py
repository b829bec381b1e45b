"""See tfadvgan/cli/train_classifier.py."""
from tfadvgan.cli.train_classifier import run

if __name__ == "__main__":
  run()
