"""Test setup: two logical CPU devices (for the multi-replica tests), quiet TF, fresh gin, the same
global random state at the start of every test, and an opt-in test order for checking that the
suite does not depend on it.

TFADVGAN_TEST_ORDER (unset = the usual file order):
  reverse          run the collected tests in reverse order;
  shuffle:<seed>   run them in a random order fixed by <seed> (module-scoped fixtures are then
                   rebuilt each time the order returns to their module, so this is slower).
"""
import os
import random

# The scripts' quiet start-up (tfadvgan.cli.common): TF_CPP_MIN_LOG_LEVEL=2 unless set, and the
# first `import tensorflow` with TF's known start-up lines dropped. Without it, the lines that TF
# writes while pytest captures the session's output are printed after the summary.
from tfadvgan.cli import common  # noqa: E402,F401  pylint: disable=unused-import

import gin  # noqa: E402
import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
  tf.config.set_logical_device_configuration(
      _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised by another import
  pass

ORDER_ENV = "TFADVGAN_TEST_ORDER"
GLOBAL_SEED = 1234


def _order():
  return os.environ.get(ORDER_ENV, "").strip()


def pytest_report_header(config):
  del config
  return f"{ORDER_ENV}={_order() or '(unset: file order)'}"


def pytest_collection_modifyitems(config, items):
  del config
  order = _order()
  if not order:
    return
  if order == "reverse":
    items.reverse()
  elif order.startswith("shuffle:") and order.split(":", 1)[1].lstrip("-").isdigit():
    random.Random(int(order.split(":", 1)[1])).shuffle(items)
  else:
    raise pytest.UsageError(f"{ORDER_ENV}={order!r}: use 'reverse' or 'shuffle:<int seed>'.")


@pytest.fixture(autouse=True)
def _clear_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture(autouse=True)
def _same_global_random_state():
  """Python, NumPy, TF (global seed and op-seed counters) and Keras start every test in the same
  state, so whatever a test draws from the global generators does not depend on what ran before.
  Tests still make their own data with `np.random.default_rng(<seed>)`; this only pins what they
  do not seed themselves (layer initialisers, `tf.random.*(seed=op_seed)`)."""
  keras.utils.set_random_seed(GLOBAL_SEED)
