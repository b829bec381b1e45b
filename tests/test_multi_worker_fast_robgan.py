"""Fast-RobGAN under MultiWorkerMirroredStrategy: two `scripts/train.py` workers on 127.0.0.1
against one process that reproduces their two input shards (`make_train_dataset.input_shards`).

Each worker holds its replica's rows of the persistent perturbation delta (a `PerReplicaState`):
the initial delta over the global batch is split by global replica id, and the checkpoint gathers
the rows back in replica order. The cluster's weights and delta must equal the one-process run's.
"""

import os

import numpy as np
import pytest

# pylint: disable-next=g-bad-import-order
from helpers import ROOT, SMALL_FAST_ROBGAN, checkpoint_arrays, read_log, start_cluster, wait_all

# A small DCGAN-shaped Fast-RobGAN (AC head, synchronized BN in G, no BN in D) with SGD, so that
# the cross-worker sums' reordering stays at float32 rounding (see tests/test_multi_worker.py).
# XLA off: compiling the step costs each worker more time than the 3 steps take.
CONFIG = SMALL_FAST_ROBGAN + """build_gan.jit_compile = False
FastRobGAN.epsilon = 0.05
train.batch_size = 8
train.num_steps = 3
train.log_every_steps = 3
train.sample_every_steps = 100
train.checkpoint_every_steps = 3
train.diagnose_every_steps = 0
make_optimizer.name = 'sgd'
make_optimizer.learning_rate = 0.02
"""


def test_two_workers_keep_each_replicas_delta_like_one_process(tmp_path):
  from tfadvgan.cli import common  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import run as loop  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(20261206)
  data = str(tmp_path / "data.npz")
  np.savez(data, images=rng.integers(0, 256, (64, 32, 32, 1), dtype=np.uint8),
           labels=rng.integers(0, 4, 64))
  config = str(tmp_path / "cfg.gin")
  with open(config, "w") as f:
    f.write(CONFIG.format(root=ROOT, data=data))
  model_dir = str(tmp_path / "cluster")
  procs = start_cluster(config, model_dir)
  reference = str(tmp_path / "reference")  # trained while the workers run
  common.parse_gin([config], ["make_train_dataset.input_shards = 2", "train.verbose = 0"])
  loop.train(reference)
  codes = wait_all(procs)
  assert codes == [0, 0], read_log(model_dir, 0)[-3000:] + read_log(model_dir, 1)[-3000:]
  got = checkpoint_arrays(os.path.join(model_dir, "checkpoints", "ckpt-3"))
  want = checkpoint_arrays(os.path.join(reference, "checkpoints", "ckpt-3"))
  assert set(got) == set(want) and len(got) > 20
  (delta,) = [k for k in want if k.startswith("state/")]  # the GAN's one PerReplicaState
  assert want[delta].shape == (8, 32, 32, 1)
  # The two replicas' halves of the delta differ (else a swap would pass unseen).
  assert np.abs(want[delta][:4] - want[delta][4:]).max() > 0.01
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
