"""See tfadvgan/cli/export.py (also `tfadvgan-export`)."""
from tfadvgan.cli.export import run

if __name__ == "__main__":
  run()
