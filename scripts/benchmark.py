"""See tfadvgan/cli/benchmark.py (also `tfadvgan-benchmark`)."""
from tfadvgan.cli.benchmark import run

if __name__ == "__main__":
  run()
