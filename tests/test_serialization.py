"""Saving and loading: every architecture and head round-trips through `.keras` in a fresh process
with every variable (BN moving statistics, spectral-norm vectors); a mixed-precision model keeps
its policy; the GAN refuses `.keras` in one line; `export_run` writes a float32 generator (the EMA
copy) whose SavedModel plain TensorFlow serves with the same outputs; bad inputs leave nothing."""
import json
import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest

from tfadvgan import errors
from tfadvgan import models
from tfadvgan.cli import common
from tfadvgan.training import export
from tfadvgan.training import run as loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, builder, kwargs): every architecture, conditional and not, every head, SN and BN.
NETWORKS = [
    ("g_dcgan", "generator", dict(arch="dcgan", output_shape=(32, 32, 3), latent_dim=6,
                                  width=4)),
    ("g_dcgan_cond_sn", "generator", dict(arch="dcgan", output_shape=(32, 32, 1), latent_dim=6,
                                          num_classes=3, width=4, spectral_norm=True)),
    ("g_resnet_cond_sn", "generator", dict(arch="resnet", output_shape=(32, 32, 3), latent_dim=6,
                                           num_classes=3, width=4, spectral_norm=True,
                                           upsampling="nearest")),
    ("g_mlp_cond", "generator", dict(arch="mlp", output_shape=(2,), latent_dim=3, num_classes=3,
                                     width=5)),
    ("d_dcgan_plain_sn_bn", "discriminator", dict(arch="dcgan", input_shape=(32, 32, 3), width=4,
                                                  spectral_norm=True, batch_norm=True)),
    ("d_dcgan_ac", "discriminator", dict(arch="dcgan", input_shape=(32, 32, 1), head="ac",
                                         num_classes=3, width=4)),
    ("d_resnet_projection_sn", "discriminator", dict(
        arch="resnet", input_shape=(32, 32, 3), head="projection", num_classes=3, width=4,
        spectral_norm=True)),
    ("d_resnet_ac_bn", "discriminator", dict(arch="resnet", input_shape=(32, 32, 3), head="ac",
                                             num_classes=3, width=4, batch_norm=True)),
    ("d_mlp_projection_sn", "discriminator", dict(arch="mlp", input_shape=(2,),
                                                  head="projection", num_classes=3, width=5,
                                                  spectral_norm=True)),
]


def _build(builder, kwargs):
  build = models.build_generator if builder == "generator" else models.build_discriminator
  return build(**kwargs)


def _randomize(model, seed):
  """Every variable set to asymmetric random values (variances and u positive), so that a
  variable left at its initial value after loading shows."""
  rng = np.random.default_rng(seed)
  for v in model.weights:
    value = rng.uniform(0.2, 1.5, v.shape) if "variance" in v.path else rng.normal(
        0, 0.3, v.shape) + 0.05
    v.assign(value.astype("float32"))


def _inputs(model, seed):
  rng = np.random.default_rng(seed)
  if isinstance(model, models.Generator):
    x = rng.normal(size=(5, model.latent_dim)).astype("f4")
  else:
    x = rng.uniform(-1, 1, (5,) + model.input_shape_).astype("f4")
  labels = rng.integers(0, 3, 5).astype("i4") if model.num_classes else None
  return x, labels


def _outputs(model, x, labels, training):
  out = model(x, labels, training=training)
  return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else {
      "images": np.asarray(out)}


# Run in a fresh process: loads every saved network and compares with the saved references.
_LOAD_AND_COMPARE = r"""
import sys, numpy as np, keras
import tfadvgan.models  # registers the classes
directory, names = sys.argv[1], sys.argv[2:]
for name in names:
  ref = np.load(f"{directory}/{name}.npz")
  model = keras.models.load_model(f"{directory}/{name}.keras")
  labels = ref["labels"] if "labels" in ref else None
  weights = {v.path: v.numpy() for v in model.weights}
  saved = {k[len("w:"):]: ref[k] for k in ref if k.startswith("w:")}
  assert sorted(weights) == sorted(saved), (name, sorted(set(weights) ^ set(saved)))
  for path, value in saved.items():
    np.testing.assert_array_equal(weights[path], value, err_msg=f"{name} {path}")
  for mode, training in (("eval", False), ("train", True)):  # train: BN batch stats, SN u step
    out = model(ref["x"], labels, training=training)
    out = out if isinstance(out, dict) else {"images": out}
    for key, value in out.items():
      np.testing.assert_allclose(np.asarray(value), ref[f"{mode}:{key}"], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{name} {mode} {key}")
print("OK", len(names))
"""


def test_every_network_round_trips_through_keras_in_a_fresh_process(tmp_path):
  for i, (name, builder, kwargs) in enumerate(NETWORKS):
    model = _build(builder, kwargs)
    _randomize(model, seed=i)
    x, labels = _inputs(model, seed=100 + i)
    ref = {"x": x, **({"labels": labels} if labels is not None else {})}
    ref.update({f"eval:{k}": v for k, v in _outputs(model, x, labels, False).items()})
    ref.update({f"w:{v.path}": v.numpy() for v in model.weights})  # before the training call
    model.save(str(tmp_path / f"{name}.keras"))
    # A training-mode call of a copy: BN uses the batch, SN runs a power-iteration step from u.
    twin = _build(builder, kwargs)
    twin.set_weights(model.get_weights())
    ref.update({f"train:{k}": v for k, v in _outputs(twin, x, labels, True).items()})
    np.savez(str(tmp_path / f"{name}.npz"), **ref)
  proc = subprocess.run([sys.executable, "-c", _LOAD_AND_COMPARE, str(tmp_path)]
                        + [n for n, _, _ in NETWORKS], capture_output=True, text=True,
                        cwd=ROOT, timeout=300, check=False,
                        env=dict(os.environ, PYTHONPATH=ROOT))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == f"OK {len(NETWORKS)}"


def _policies(model):
  """The dtype policy names of `model` and every layer inside it."""
  return {l.dtype_policy.name for l in model._flatten_layers()}  # pylint: disable=protected-access


def test_a_mixed_precision_network_loads_with_its_policy(tmp_path):
  with models.dtype_policy("bfloat16"):
    d = models.build_discriminator("resnet", (32, 32, 3), head="projection", num_classes=3,
                                   width=4, spectral_norm=True)
  _randomize(d, seed=7)
  path = str(tmp_path / "d.keras")
  d.save(path)
  assert keras.config.dtype_policy().name == "float32"
  loaded = keras.models.load_model(path)
  policies = _policies(loaded)
  assert policies == {"mixed_bfloat16"}, policies
  assert keras.config.dtype_policy().name == "float32"  # nothing leaked out of the load
  x, labels = _inputs(d, seed=8)
  np.testing.assert_array_equal(loaded(x, labels)["logits"], d(x, labels)["logits"])


def test_layers_rebuild_from_their_config():
  cbn = models.ConditionalBatchNorm(4, synchronized=True, name="c")
  again = models.ConditionalBatchNorm.from_config(cbn.get_config())
  assert (again.num_classes, again.synchronized, again.name) == (4, True, "c")
  head = models.layers.DiscriminatorHead("ac", 5, use_spectral_norm=True,
                                         kernel_initializer=models.layers.dcgan_init())
  config = head.get_config()
  again = models.layers.DiscriminatorHead.from_config(config)
  assert again.get_config() == config
  assert again.kernel_initializer.stddev == 0.02


def test_gan_save_is_refused_in_one_line_before_any_file(tmp_path):
  gan = _tiny_gan()
  with pytest.raises(errors.ConfigError, match="export a run's generator with "
                     "scripts/export.py") as info:
    gan.save(str(tmp_path / "gan.keras"))
  assert "\n" not in str(info.value)
  callback = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras"))
  callback.set_model(gan)
  with pytest.raises(errors.ConfigError, match="save_weights_only=True"):
    callback.on_epoch_end(0, {})
  assert os.listdir(tmp_path) == []
  # keras.saving.save_model(gan) gets the same error from get_config (Keras has opened its zip by
  # then: docs/library.md, "Saving and exporting").
  with pytest.raises(errors.ConfigError, match="scripts/export.py"):
    keras.saving.save_model(gan, str(tmp_path / "direct.keras"))


def _tiny_gan():
  common.parse_gin([], ["build_generator.width = 4", "build_discriminator.width = 4",
                        "build_gan.latent_dim = 6", "build_gan.jit_compile = False"])
  return loop.build_gan((32, 32, 1), 0)


# ------------------------------------------------------------------ export of a run
def _npz(tmp_path):
  rng = np.random.default_rng(21)
  path = str(tmp_path / "data.npz")
  np.savez(path, images=rng.integers(0, 256, (16, 32, 32, 1)).astype(np.uint8),
           labels=(np.arange(16) % 10).astype(np.int64))
  return path


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
  """A 2-step conditional DCGAN run trained in bfloat16, with a generator EMA."""
  tmp = tmp_path_factory.mktemp("export")
  model_dir = str(tmp / "run")
  common.parse_gin([os.path.join(ROOT, "gin_configs/base/dcgan_fmnist.gin")], [
      "build_generator.width = 4", "build_discriminator.width = 4", "train.batch_size = 4",
      "train.num_steps = 2", "train.checkpoint_every_steps = 1", "train.log_every_steps = 1",
      "train.sample_every_steps = 100", "train.diagnose_every_steps = 0", "train.verbose = 0",
      "make_train_dataset.shuffle_buffer = 16", "build_gan.run_eagerly = True",
      "build_gan.conditional = True", "GAN.ema_decay = 0.5", "build_gan.latent_dim = 6",
      "train.mixed_precision = 'bfloat16'", "dataset.source = 'npz'",
      f"dataset.path = '{_npz(tmp)}'"])
  loop.train(model_dir)
  gin.clear_config()
  return model_dir


_PLAIN_TF = r"""
import sys, numpy as np, tensorflow as tf
ref = np.load(sys.argv[2])
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = served(z=tf.constant(ref["z"]), labels=tf.constant(ref["labels"]))["images"]
assert not any(m.split(".")[0] == "tfadvgan" for m in sys.modules), "tfadvgan was imported"
assert out.dtype == tf.float32, out.dtype
np.testing.assert_allclose(out.numpy(), ref["images"], rtol=1e-5, atol=1e-8)
print("OK", out.shape)
"""


def test_export_serves_the_ema_generator_in_float32_to_plain_tensorflow(bf16_run, tmp_path):
  gin.clear_config()
  gan, _, _ = loop.restore_run(bf16_run)
  rng = np.random.default_rng(5)
  z = rng.normal(size=(7, 6)).astype("f4")
  labels = np.array([0, 9, 3, 3, 1, 7, 2], "i4")
  images = np.asarray(gan.generator_ema(z, labels, training=False))
  raw = np.asarray(gan.generator(z, labels, training=False))
  # The EMA copy differs from G by ~3% of the (small, width-4) outputs: the test can tell.
  assert np.abs(images - raw).max() > 0.01 * np.abs(images).max()
  np.savez(str(tmp_path / "ref.npz"), z=z, labels=labels, images=images)

  out = str(tmp_path / "exported")
  path, written = export.export_run(bf16_run, out)
  assert path.endswith("ckpt-2")
  assert sorted(os.listdir(out)) == ["export.json", "generator.keras", "saved_model"]
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
  with open(written["info"]) as f:
    info = json.load(f)
  assert info["ema"] is True and info["step"] == 2
  assert info["output"] == {"name": "images", "dtype": "float32", "shape": [None, 32, 32, 1],
                            "range": [-1.0, 1.0]}
  assert info["inputs"]["labels"] == {"dtype": "int32", "shape": [None], "range": [0, 9]}

  proc = subprocess.run([sys.executable, "-c", _PLAIN_TF, written["saved_model"],
                         str(tmp_path / "ref.npz")], capture_output=True, text=True, cwd="/",
                        timeout=300, check=False,
                        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "OK (7, 32, 32, 1)"

  loaded = keras.models.load_model(written["keras"])
  assert _policies(loaded) == {"float32"}
  np.testing.assert_allclose(loaded(z, labels, training=False), images, rtol=1e-5, atol=1e-8)


def test_export_replaces_an_earlier_export_only_when_complete(bf16_run, tmp_path):
  out = tmp_path / "exported"
  out.mkdir()
  (out / "export.json").write_text("{}")
  (out / "stale.txt").write_text("old")
  export.export_run(bf16_run, str(out), step=1)
  assert sorted(os.listdir(out)) == ["export.json", "generator.keras", "saved_model"]
  assert json.loads((out / "export.json").read_text())["step"] == 1
  assert os.listdir(tmp_path) == ["exported"]


def test_export_bad_inputs_are_one_line_and_write_nothing(bf16_run, tmp_path):
  out = tmp_path / "exported"
  empty = tmp_path / "empty_run"
  empty.mkdir()
  (empty / "run.json").write_text(open(os.path.join(bf16_run, "run.json")).read())
  (empty / "operative_config.gin").write_text(
      open(os.path.join(bf16_run, "operative_config.gin")).read())
  cases = [(str(tmp_path / "nowhere"), None, "is not a tfadvgan run directory"),
           (str(empty), None, "No checkpoint in"),
           (bf16_run, 7, "No checkpoint for step 7"),
           (bf16_run, "best", "No best checkpoint"), (bf16_run, "last", "--step must be")]
  for model_dir, step, message in cases:
    with pytest.raises(errors.ConfigError, match=message) as info:
      export.export_run(model_dir, str(out), step)
    assert "\n" not in str(info.value)
    assert not out.exists()
  assert sorted(os.listdir(tmp_path)) == ["empty_run"]
  # An --out that is not an earlier export (here a run directory) is never replaced.
  before = sorted(os.listdir(empty))
  with pytest.raises(errors.ConfigError, match="is not an earlier export"):
    export.export_run(bf16_run, str(empty))
  assert sorted(os.listdir(empty)) == before


def test_export_script_exits_2_with_one_line(tmp_path):
  out = tmp_path / "exported"
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["PYTHONPATH"] = ROOT
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export.py"),
                         f"--model_dir={tmp_path / 'nowhere'}", f"--out={out}"],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
                        check=False)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.splitlines() == [
      f"error: {tmp_path / 'nowhere'} is not a tfadvgan run directory (no run.json); pass the "
      "--model_dir that train.py wrote."]
  assert not out.exists()
