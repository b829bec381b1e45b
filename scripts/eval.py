"""See tfadvgan/cli/eval.py."""
from tfadvgan.cli.eval import run

if __name__ == "__main__":
  run()
