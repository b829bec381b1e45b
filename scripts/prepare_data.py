"""Prepares sharded TFRecord data for pod runs: see tfadvgan/cli/prepare_data.py (also
`tfadvgan-prepare-data`)."""
from tfadvgan.cli.prepare_data import run

if __name__ == "__main__":
  run()
