"""Bad inputs a new user gives the scripts: one line that names the cause and what to change."""
import numpy as np
import pytest

from tfadvgan import errors
from tfadvgan import images


def test_per_grid_zero_is_one_line_and_writes_nothing(tmp_path):
  out = tmp_path / "out"
  samples = np.random.default_rng(3).uniform(-1, 1, (5, 8, 8, 1)).astype(np.float32)
  with pytest.raises(errors.ConfigError, match=r"^--per_grid must be >= 1; got 0\.$"):
    images.write_samples(str(out), samples, per_grid=0)
  assert not out.exists()
  npz, written = images.write_samples(str(out), samples, per_grid=2)
  assert [p.rsplit("/", 1)[-1] for p in written] == ["grid_000.png", "grid_001.png",
                                                     "grid_002.png"]
  np.testing.assert_array_equal(np.load(npz)["images"], samples)
