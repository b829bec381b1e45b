"""See tfadvgan/cli/sample.py (also `tfadvgan-sample`)."""
from tfadvgan.cli.sample import run

if __name__ == "__main__":
  run()
