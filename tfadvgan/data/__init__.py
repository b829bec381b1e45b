"""Datasets: named sources (`load`), arrays (`from_arrays`) and the train/eval pipelines.

Importing the package registers every source in `SOURCES`:
TFDS `cifar10`, `cifar100`, `celeb_a`, `lsun_bedroom`, `imagenet143`, `mnist`, `fashion_mnist`;
local `idx` (alias `fashion_mnist_idx`), `cifar_python`, `npz`, `folder`; prepared `tfrecord`
(`write_records`, `scripts/prepare_data.py`);
synthetic `ring`, `grid`.
"""
# Importing a loader module registers its sources (in this order in `SOURCES`).
from tfadvgan.data import idx  # noqa: F401
from tfadvgan.data import cifar  # noqa: F401
from tfadvgan.data import npz  # noqa: F401
from tfadvgan.data import folder  # noqa: F401
from tfadvgan.data import records  # noqa: F401
from tfadvgan.data import synthetic  # noqa: F401
from tfadvgan.data import tfds_sources  # noqa: F401
from tfadvgan.data.batches import steps_per_epoch
from tfadvgan.data.batches import train_batches
from tfadvgan.data.idx import load_with_ring_fallback
from tfadvgan.data.pipeline import make_eval_dataset
from tfadvgan.data.pipeline import make_train_dataset
from tfadvgan.data.records import write_records
from tfadvgan.data.registry import load
from tfadvgan.data.registry import SOURCES
from tfadvgan.data.sources import from_arrays
from tfadvgan.data.sources import Source
from tfadvgan.data.synthetic import grid_centres
from tfadvgan.data.synthetic import MODE_STD
from tfadvgan.data.synthetic import mode_centres
from tfadvgan.data.synthetic import ring_centres

__all__ = [
    "Source", "SOURCES", "load", "load_with_ring_fallback", "from_arrays", "make_train_dataset",
    "make_eval_dataset", "train_batches", "steps_per_epoch", "write_records", "mode_centres",
    "ring_centres", "grid_centres",
    "MODE_STD",
]
