"""Tests for tfadvgan.data: sources (local files, synthetic, TFDS via mocks) and pipelines."""
import logging
import os
import pickle
import tarfile

import gin
import numpy as np
import pytest
import tensorflow as tf

import helpers  # pylint: disable=g-bad-import-order
from tfadvgan import data
from tfadvgan.data import idx as local
from tfadvgan.data import sources
from tfadvgan.data import transforms
from tfadvgan.data import synthetic
from tfadvgan.errors import ConfigError

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _examples(source):
  """Returns (images [N, ...], labels [N] or None) as numpy arrays."""
  batches = list(source.images.batch(4096).as_numpy_iterator())  # one element at a time is slow
  if source.num_classes:
    return (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]))
  return np.concatenate(batches), None


# ---------------------------------------------------------------------------------------------
# Registry and load options


def test_registry_has_all_sources():
  expected = {"cifar10", "cifar100", "celeb_a", "lsun_bedroom", "imagenet143", "mnist",
              "fashion_mnist", "idx", "cifar_python", "npz", "folder", "ring", "grid"}
  assert expected <= set(data.SOURCES)


def test_unknown_source_lists_valid_names():
  with pytest.raises(ConfigError, match=r"Unknown dataset source 'cifar11'.*cifar10.*ring"):
    data.load("cifar11")


def test_bad_split_lists_valid_splits():
  with pytest.raises(ConfigError, match=r"Unknown split 'validation'.*train, test"):
    data.load("ring", split="validation")


def test_option_not_used_by_source_only_warns(caplog):
  with caplog.at_level(logging.WARNING):
    source = data.load("ring", num_examples=5, path="/tmp/x", resolution=32)
  assert source.name == "ring" and int(source.images.cardinality()) == 5
  assert "does not use option(s) path, resolution" in caplog.text


def test_require_labels_on_unlabelled_source():
  with pytest.raises(ConfigError, match="no labels"):
    data.load("ring", num_examples=10, require_labels=True)


def test_gin_binding_selects_source():
  gin.parse_config("dataset.source = 'grid'\ndataset.num_examples = 7\ndataset.seed = 3")
  source = data.load()  # pylint: disable=no-value-for-parameter
  assert source.name == "grid" and int(source.images.cardinality()) == 7


def test_classes_selection_remaps_and_num_examples_truncates():
  images = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((6, 2, 2, 1), np.uint8)
  source = data.from_arrays(images, labels=[0, 1, 2, 3, 2, 1])
  picked = data.load(source, classes=[2, 1])
  x, y = _examples(picked)
  assert picked.num_classes == 2
  np.testing.assert_allclose(x[:, 0, 0, 0], np.array([1, 2, 4, 5]) / 127.5 - 1)
  np.testing.assert_array_equal(y, [1, 0, 0, 1])
  assert len(_examples(data.load(source, num_examples=4))[0]) == 4
  with pytest.raises(ConfigError, match="classes must be distinct integers"):
    data.load(source, classes=[7])
  with pytest.raises(ConfigError, match="no examples"):
    data.load(data.from_arrays(images, labels=[0, 0, 0, 0, 0, 2]), classes=[1])


# ---------------------------------------------------------------------------------------------
# IDX


_write_idx = helpers.write_idx


@pytest.fixture(name="idx_dir")
def _idx_dir(tmp_path):
  pixels = (np.arange(3 * 28 * 28) * 7 % 256).astype(np.uint8).reshape(3, 28, 28)
  _write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), pixels)
  _write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), [0, 5, 9])
  _write_idx(str(tmp_path / "t10k-images-idx3-ubyte"), pixels[:2][:, ::-1])  # uncompressed
  _write_idx(str(tmp_path / "t10k-labels-idx1-ubyte"), [3, 4])
  return str(tmp_path), pixels


def test_idx_padded_values_and_labels(idx_dir):
  path, pixels = idx_dir
  source = data.load("idx", path=path)
  assert source.shape == (32, 32, 1) and source.num_classes == 10
  assert int(source.images.cardinality()) == 3
  x, y = _examples(source)
  expected = np.full((3, 32, 32), -1.0, np.float32)
  expected[:, 2:30, 2:30] = pixels / 127.5 - 1
  np.testing.assert_allclose(x[..., 0], expected, atol=1e-6)
  assert (x[:, :2] == -1).all() and (x[:, -2:] == -1).all() and (x[:, :, :2] == -1).all()
  np.testing.assert_array_equal(y, [0, 5, 9])
  assert y.dtype == np.int32 and x.dtype == np.float32


def test_idx_uncompressed_test_split_resize_options(idx_dir):
  path, pixels = idx_dir
  raw = data.load("idx", split="test", path=path, pad=False, resolution=28)
  x, y = _examples(raw)
  np.testing.assert_allclose(x[..., 0], pixels[:2][:, ::-1] / 127.5 - 1, atol=1e-6)
  np.testing.assert_array_equal(y, [3, 4])
  resized = data.load("idx", split="test", path=path, pad=False)
  xr, _ = _examples(resized)
  assert resized.shape == (32, 32, 1) and xr.min() >= -1 and xr.max() <= 1
  assert not (xr[:, 0] == -1).all()  # resized, not padded
  np.testing.assert_allclose(xr.mean(), x.mean(), atol=0.02)


def test_idx_errors(tmp_path, idx_dir):
  with pytest.raises(ConfigError, match="does not exist"):
    data.load("idx", path=str(tmp_path / "nope"))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(ConfigError, match="train-images-idx3-ubyte"):
    data.load("idx", path=str(empty))
  with open(empty / "train-images-idx3-ubyte", "wb") as f:
    f.write(b"\x12\x34\x08\x03garbage")
  with pytest.raises(ConfigError, match="not an IDX file"):
    data.load("idx", path=str(empty))
  with pytest.raises(ConfigError, match="Unknown split"):
    data.load("idx", path=idx_dir[0], split="validation")


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason=f"{FASHION_DIR} not present")
def test_real_fashion_mnist_counts():
  assert local.idx_num_examples(FASHION_DIR, "train") == 60000
  assert local.idx_num_examples(FASHION_DIR, "test") == 10000
  source = data.load("fashion_mnist_idx", split="test")
  assert int(source.images.cardinality()) == 10000
  assert source.shape == (32, 32, 1) and source.num_classes == 10


# ---------------------------------------------------------------------------------------------
# CIFAR python archives


def _write_cifar(root, layout, rng):
  """Writes a tiny CIFAR-10/100 python archive directory; returns {split: (images, labels)}."""
  os.makedirs(root)
  if layout == "cifar10":
    files = {f"data_batch_{i}": "train" for i in range(1, 6)}
    files["test_batch"] = "test"
    label_key, num_classes = b"labels", 10
  else:
    files = {"train": "train", "test": "test"}
    label_key, num_classes = b"fine_labels", 100
  expected = {"train": ([], []), "test": ([], [])}
  for name, split in files.items():
    images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=2).tolist()
    batch = {b"data": images.transpose(0, 3, 1, 2).reshape(2, -1), label_key: labels}
    if layout == "cifar100":
      batch[b"coarse_labels"] = [0, 0]
    with open(os.path.join(root, name), "wb") as f:
      pickle.dump(batch, f, protocol=2)
    expected[split][0].append(images)
    expected[split][1].extend(labels)
  with open(os.path.join(root, "batches.meta" if layout == "cifar10" else "meta"), "wb") as f:
    pickle.dump({b"label_names": []}, f)
  return {k: (np.concatenate(v[0]), np.array(v[1])) for k, v in expected.items()}


class _RunsCode:
  """Unpickling it calls os.system: what a crafted "CIFAR archive" could do."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_cifar_python_refuses_a_pickle_that_would_run_code(tmp_path):
  root = str(tmp_path / "cifar-py")
  _write_cifar(root, "cifar10", np.random.default_rng(5))
  marker = tmp_path / "code_ran"
  with open(os.path.join(root, "data_batch_3"), "wb") as f:
    pickle.dump({b"data": _RunsCode(str(marker)), b"labels": [1]}, f, protocol=2)
  with pytest.raises(ConfigError, match=r"data_batch_3.*asks to load posix\.system, which a CIFAR "
                     r"archive never holds"):
    data.load("cifar_python", path=root)
  assert not marker.exists()


@pytest.mark.parametrize("layout,num_classes", [("cifar10", 10), ("cifar100", 100)])
@pytest.mark.parametrize("archive", [False, True])
def test_cifar_python(tmp_path, layout, num_classes, archive):
  root = str(tmp_path / f"{layout}-py")
  expected = _write_cifar(root, layout, np.random.default_rng(0))
  path = root
  if archive:
    path = str(tmp_path / f"{layout}.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
      tar.add(root, arcname=os.path.basename(root))
  for split in ("train", "test"):
    source = data.load("cifar_python", path=path, split=split)
    assert source.num_classes == num_classes and source.shape == (32, 32, 3)
    x, y = _examples(source)
    np.testing.assert_allclose(x, expected[split][0] / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(y, expected[split][1])
  assert len(_examples(data.load("cifar_python", path=path))[0]) == (10 if layout == "cifar10"
                                                                      else 2)


def test_cifar_python_errors(tmp_path):
  with pytest.raises(ConfigError, match="needs dataset.path"):
    data.load("cifar_python")
  (tmp_path / "junk").mkdir()
  with pytest.raises(ConfigError, match="neither CIFAR-10"):
    data.load("cifar_python", path=str(tmp_path / "junk"))
  (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
  with pytest.raises(ConfigError, match="readable .tar.gz"):
    data.load("cifar_python", path=str(tmp_path / "junk.tar.gz"))


# ---------------------------------------------------------------------------------------------
# npz and from_arrays


def test_npz_uint8_adds_channel_and_scales(tmp_path):
  images = np.array([[[0, 255], [128, 64]], [[1, 2], [3, 4]]], np.uint8)  # [N, H, W]
  np.savez(tmp_path / "a.npz", images=images, labels=np.array([1, 0]))
  source = data.load("npz", path=str(tmp_path / "a.npz"))
  assert source.shape == (2, 2, 1) and source.num_classes == 2
  x, y = _examples(source)
  np.testing.assert_allclose(x[..., 0], images / 127.5 - 1, atol=1e-6)
  np.testing.assert_array_equal(y, [1, 0])


def test_npz_float_kept_and_resized(tmp_path):
  images = np.linspace(-1, 1, 2 * 4 * 4 * 3, dtype=np.float64).reshape(2, 4, 4, 3)
  np.savez(tmp_path / "f.npz", images=images)
  source = data.load("npz", path=str(tmp_path / "f.npz"))
  assert source.num_classes == 0 and source.shape == (4, 4, 3)
  x, _ = _examples(source)
  np.testing.assert_allclose(x, images, atol=1e-6)
  small = data.load("npz", path=str(tmp_path / "f.npz"), resolution=2)
  xs, _ = _examples(small)
  assert small.shape == (2, 2, 3)
  np.testing.assert_allclose(xs.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("arrays,message", [
    (dict(images=np.zeros((2, 4, 4, 3, 1), np.uint8)), "shape"),
    (dict(images=np.zeros((2, 4, 4, 2), np.uint8)), "1 or 3 channels"),
    (dict(images=np.zeros((2, 4, 4), np.int64)), "dtype int64"),
    (dict(images=np.full((2, 4, 4), 2.0)), r"\[-1, 1\]"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(3, np.int64)), r"labels.*\[2\]"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(2)), "integers"),
    (dict(images=np.zeros((0, 4, 4), np.uint8)), "0 examples"),
    (dict(pictures=np.zeros((2, 4, 4), np.uint8)), "no 'images' array"),
])
def test_npz_errors(tmp_path, arrays, message):
  np.savez(tmp_path / "bad.npz", **arrays)
  with pytest.raises(ConfigError, match=message):
    data.load("npz", path=str(tmp_path / "bad.npz"))


def test_npz_missing_file(tmp_path):
  with pytest.raises(ConfigError, match="does not exist"):
    data.load("npz", path=str(tmp_path / "missing.npz"))


# ---------------------------------------------------------------------------------------------
# Image folder


def _write_png(path, array):
  tf.io.write_file(path, tf.io.encode_png(array))


def test_folder_class_subfolders_sorted(tmp_path):
  rng = np.random.default_rng(1)
  written = {}
  for cls in ("zebra", "ant"):  # labels follow sorted names: ant=0, zebra=1
    (tmp_path / cls).mkdir()
    for i in range(2):
      image = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
      _write_png(str(tmp_path / cls / f"{i}.png"), image)
      written[(cls, i)] = image
  (tmp_path / "empty_dir").mkdir()
  (tmp_path / "zebra" / "notes.txt").write_text("ignored")
  source = data.load("folder", path=str(tmp_path))
  assert source.num_classes == 2 and source.shape == (6, 6, 3)
  x, y = _examples(source)
  np.testing.assert_array_equal(y, [0, 0, 1, 1])
  order = [("ant", 0), ("ant", 1), ("zebra", 0), ("zebra", 1)]
  np.testing.assert_allclose(x, np.stack([written[k] for k in order]) / 127.5 - 1, atol=1e-6)
  small = data.load("folder", path=str(tmp_path), resolution=3)
  assert small.shape == (3, 3, 3) and _examples(small)[0].shape == (4, 3, 3, 3)


def test_folder_unlabelled_grey_and_errors(tmp_path):
  _write_png(str(tmp_path / "a.png"), np.full((5, 5, 1), 255, np.uint8))
  _write_png(str(tmp_path / "b.png"), np.zeros((7, 5, 1), np.uint8))  # resized to first's size
  source = data.load("folder", path=str(tmp_path))
  assert source.num_classes == 0 and source.shape == (5, 5, 1)
  x, _ = _examples(source)
  np.testing.assert_allclose(x[0], 1.0)
  np.testing.assert_allclose(x[1], -1.0)
  with pytest.raises(ConfigError, match="no labels"):
    data.load("folder", path=str(tmp_path), require_labels=True)
  (tmp_path / "cls").mkdir()
  _write_png(str(tmp_path / "cls" / "c.png"), np.zeros((5, 5, 1), np.uint8))
  with pytest.raises(ConfigError, match="both images at the top level and class subfolders"):
    data.load("folder", path=str(tmp_path))
  (tmp_path / "none").mkdir()
  with pytest.raises(ConfigError, match="No .* images found"):
    data.load("folder", path=str(tmp_path / "none"))


# ---------------------------------------------------------------------------------------------
# Synthetic


def test_mode_centres():
  ring = data.mode_centres("ring")
  assert ring.shape == (8, 2)
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0, rtol=1e-6)
  np.testing.assert_allclose(ring[0], [2.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(np.diff(np.unwrap(np.arctan2(ring[:, 1], ring[:, 0]))), np.pi / 4,
                             rtol=1e-5)
  grid = data.mode_centres("grid")
  expected = {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
  assert {tuple(p) for p in grid.astype(int).tolist()} == expected and grid.shape == (25, 2)
  with pytest.raises(ConfigError, match="ring"):
    data.mode_centres("spiral")


@pytest.mark.parametrize("name,std,num_modes", [("ring", 0.02, 8), ("grid", 0.05, 25)])
def test_synthetic_points(name, std, num_modes):
  source = data.load(name, num_examples=20000, seed=5)
  assert source.shape == (2,) and source.num_classes == 0
  assert source.images.element_spec.dtype == tf.float32
  points, _ = _examples(source)
  assert points.shape == (20000, 2)
  centres = data.mode_centres(name)
  dist = np.linalg.norm(points[:, None] - centres[None], axis=-1)
  nearest = dist.argmin(axis=1)
  residual = points - centres[nearest]
  np.testing.assert_allclose(residual.std(axis=0), std, rtol=0.05)
  counts = np.bincount(nearest, minlength=num_modes)
  assert counts.min() > 0.7 * 20000 / num_modes
  again, _ = _examples(data.load(name, num_examples=20000, seed=5))
  np.testing.assert_array_equal(points, again)
  other, _ = _examples(data.load(name, num_examples=20000, seed=6))
  test, _ = _examples(data.load(name, split="test", num_examples=20000, seed=5))
  assert not np.allclose(points, other) and not np.allclose(points, test)
  wide, _ = _examples(data.load(name, num_examples=2000, std=0.3))
  assert np.linalg.norm(wide[:, None] - centres[None], axis=-1).min(axis=1).mean() > 0.2
  assert int(data.load(name).images.cardinality()) == 100000


# ---------------------------------------------------------------------------------------------
# Pipelines


def _id_source(n=40, num_classes=4):
  """Each image is filled with its index (as uint8), label = index % num_classes."""
  images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 2, 1))
  return data.from_arrays(np.ascontiguousarray(images), labels=np.arange(n) % num_classes)


def _ids(images):
  return np.rint((images[..., 0, 0, 0] + 1) * 127.5).astype(int)


def test_train_dataset_shapes_and_contents():
  source = _id_source()
  ds = data.make_train_dataset(source, batch_size=4, n_dis=3, latent_dim=5, seed=0,
                               conditional=True)
  spec = ds.element_spec
  assert spec["images"].shape == (4, 3, 2, 2, 1) and spec["images"].dtype == tf.float32
  assert spec["labels"].shape == (4, 3) and spec["labels"].dtype == tf.int32
  assert spec["z_d"].shape == (4, 3, 5) and spec["z_g"].shape == (4, 5)
  assert spec["y_d"].shape == (4, 3) and spec["y_g"].shape == (4,)
  assert spec["y_d"].dtype == tf.int32 and spec["y_g"].dtype == tf.int32
  batches = list(ds.take(20).as_numpy_iterator())
  first = _ids(batches[0]["images"])
  assert len(set(first.ravel().tolist())) == 12  # n_dis slices are distinct examples
  for b in batches:
    np.testing.assert_array_equal(b["labels"], _ids(b["images"]) % 4)
  y = np.concatenate([np.concatenate([b["y_d"].ravel(), b["y_g"]]) for b in batches])
  assert y.min() >= 0 and y.max() < 4 and len(set(y.tolist())) == 4
  z = np.concatenate([b["z_d"].ravel() for b in batches])
  assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1
  assert not np.allclose(batches[0]["z_d"][:, 0], batches[0]["z_g"])
  assert not np.allclose(batches[0]["z_g"], batches[1]["z_g"])
  # 20 batches x 12 = 240 examples = 6 epochs: every example appears, 6 times.
  counts = np.bincount(np.concatenate([_ids(b["images"]).ravel() for b in batches]))
  np.testing.assert_array_equal(counts, np.full(40, 6))


def test_train_dataset_deterministic_given_seed():
  def run(seed):
    ds = data.make_train_dataset(_id_source(), batch_size=2, n_dis=2, latent_dim=3, seed=seed)
    return list(ds.take(3).as_numpy_iterator())

  a, b, c = run(7), run(7), run(8)
  for x, y in zip(a, b):
    for key in ("images", "z_d", "z_g"):
      np.testing.assert_array_equal(x[key], y[key])
  assert not np.allclose(a[0]["z_g"], c[0]["z_g"])
  assert not np.allclose(a[0]["z_d"], c[0]["z_d"])
  assert "y_d" not in a[0] and "y_g" not in a[0]


def test_train_dataset_unlabelled_and_conditional_error():
  ring = data.load("ring", num_examples=50)
  ds = data.make_train_dataset(ring, batch_size=5, n_dis=2, latent_dim=4)
  assert set(ds.element_spec) == {"images", "z_d", "z_g"}
  assert ds.element_spec["images"].shape == (5, 2, 2)
  with pytest.raises(ConfigError, match="Method wgan_gp_cond is class-conditional but dataset "
                     "'ring' has no labels"):
    data.make_train_dataset(ring, 5, conditional=True, method="wgan_gp_cond")
  with pytest.raises(ConfigError, match="does not match"):
    data.make_train_dataset(_id_source(), 5, num_classes=10, conditional=True)
  with pytest.raises(ConfigError, match="batch_size"):
    data.make_train_dataset(ring, 0)


def test_eval_dataset_in_order_keeps_remainder():
  batches = list(data.make_eval_dataset(_id_source(n=10), batch_size=4).as_numpy_iterator())
  assert [len(b["images"]) for b in batches] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([_ids(b["images"]) for b in batches]),
                                np.arange(10))
  np.testing.assert_array_equal(np.concatenate([b["labels"] for b in batches]),
                                np.arange(10) % 4)
  ring = list(data.make_eval_dataset(data.load("ring", num_examples=5), 2).as_numpy_iterator())
  assert [b["images"].shape for b in ring] == [(2, 2), (2, 2), (1, 2)]


# ---------------------------------------------------------------------------------------------
# TFDS (mocked)


@pytest.mark.parametrize("name,kwargs,shape,num_classes", [
    ("cifar10", {}, (32, 32, 3), 10),
    ("cifar100", {"split": "test"}, (32, 32, 3), 100),
    ("celeb_a", {}, (64, 64, 3), 0),
    ("celeb_a", {"resolution": 32}, (32, 32, 3), 0),
    ("lsun_bedroom", {"split": "test"}, (64, 64, 3), 0),
    ("mnist", {}, (32, 32, 1), 10),
    ("fashion_mnist", {"pad": False, "resolution": 28}, (28, 28, 1), 10),
])
def test_tfds_sources_mocked(name, kwargs, shape, num_classes):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=3):
    source = data.load(name, **kwargs)
    x, y = _examples(source)
  assert source.shape == shape and source.num_classes == num_classes
  assert x.shape == (3,) + shape and x.dtype == np.float32
  assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.02  # not constant
  if num_classes:
    assert y.dtype == np.int32 and y.min() >= 0 and y.max() < num_classes


def test_tfds_mnist_padding_border():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=2):
    x, _ = _examples(data.load("mnist"))
  assert (x[:, :2] == -1).all() and (x[:, :, -2:] == -1).all()


def test_tfds_imagenet143_filters_and_remaps():
  tfds = pytest.importorskip("tensorflow_datasets")
  labels = [0, 150, 151, 200, 293, 294, 999]

  def as_dataset_fn(self, *args, **kwargs):
    del args, kwargs

    def gen():
      for i, label in enumerate(labels):
        image = np.full((40 + 10 * i, 70, 3), 20 * i, np.uint8)
        yield {"image": image, "label": label, "file_name": f"{i}.JPEG"}

    return tf.data.Dataset.from_generator(gen, output_types=self.info.features.dtype,
                                          output_shapes=self.info.features.shape)

  with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn):
    source = data.load("imagenet143", resolution=128)
    x, y = _examples(source)
    with pytest.raises(ConfigError, match=r"\(64, 128\)"):
      data.load("imagenet143", resolution=96)
  assert source.num_classes == 143 and source.shape == (128, 128, 3)
  np.testing.assert_array_equal(y, [0, 49, 142])
  assert x.shape == (3, 128, 128, 3)
  np.testing.assert_allclose(x[:, 0, 0, 0], np.array([40, 60, 80]) / 127.5 - 1, atol=1e-5)


def test_tfds_missing_data_is_config_error(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(ConfigError, match=r"data_dir=.*dataset.data_dir.*dataset.download"):
    data.load("cifar10", data_dir=str(tmp_path), download=False)


def test_from_arrays_converts_in_chunks_as_per_example_math():
  """uint8 arrays are converted CONVERT_CHUNK examples at a time; every example (across a chunk
  boundary and in the short last chunk) equals x / 127.5 - 1 padded with -1 (NumPy), and a
  resized source equals resizing each image on its own."""
  rng = np.random.default_rng(11)
  n = sources.CONVERT_CHUNK + 44
  images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
  labels = rng.integers(0, 10, n)
  got = list(sources.from_arrays(images, labels, pad_to=32).images.as_numpy_iterator())
  assert len(got) == n
  expected = np.pad(images[..., None] / 127.5 - 1.0, [(0, 0), (2, 2), (2, 2), (0, 0)],
                    constant_values=-1.0)
  np.testing.assert_allclose(np.stack([x for x, _ in got]), expected, rtol=0, atol=1e-6)
  np.testing.assert_array_equal([y for _, y in got], labels)
  resized = np.stack(list(sources.from_arrays(images[:300], resolution=20).images))
  one_by_one = np.stack([transforms.resize(transforms.to_unit_range(x[..., None]), 20)
                         for x in images[:300]])
  np.testing.assert_allclose(resized, one_by_one, atol=1e-6)
