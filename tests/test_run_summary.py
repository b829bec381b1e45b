"""TensorBoard at the start of a run: the operative config as text, a grid of real images, the
non-default bindings as hparams; and the last sample grid written once."""
import os

import gin
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from tfadvgan import config
from tfadvgan import images as images_lib
from tfadvgan.training import run as loop
from helpers import TINY, parse, small_npz, summary_events  # pylint: disable=g-bad-import-order


def test_config_real_images_hparams_and_one_final_grid(tmp_path):
  data = small_npz(tmp_path, n=64)
  parse(["gin_configs/base/dcgan_fmnist.gin"],
        TINY + ["dataset.source = 'npz'", f"dataset.path = '{data}'", "train.num_steps = 2",
                "train.sample_every_steps = 2", "train.seed = 7", "make_optimizer.beta_2 = 0.999"])
  model_dir = str(tmp_path / "run")
  loop.train(model_dir)
  tags = summary_events(os.path.join(model_dir, "train"))

  [(step, text)] = tags["config/operative"]
  assert step == 0
  written = tf.make_ndarray(text.tensor).item().decode()
  with open(os.path.join(model_dir, "operative_config.gin"), encoding="utf-8") as f:
    assert f.read().strip() in written  # the file train.py saves, as text

  [(step, real)] = tags["real_images"]
  assert step == 0
  png = tf.make_ndarray(real.tensor)[2]  # [width, height, png bytes...]
  images = np.load(data)["images"][:64].astype(np.float32) / 127.5 - 1.0
  expected = images_lib.grid(images)
  np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), expected.reshape(
      expected.shape[0], expected.shape[1], -1))

  [(_, session)] = tags["_hparams_/session_start_info"]
  info = plugin_data_pb2.HParamsPluginData.FromString(session.metadata.plugin_data.content)
  hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
             for k, v in info.session_start_info.hparams.items()}
  assert hparams["train.seed"] == 7
  assert hparams["dataset.source"] == "npz"
  assert hparams["build_generator.width"] == 8
  assert "make_optimizer.beta_2" not in hparams  # its default (0.999)
  assert "train.num_steps" in hparams

  # The last grid (step 2 is both an interval and the end) is written once.
  assert [s for s, _ in tags["samples"]] == [2]
  assert os.listdir(os.path.join(model_dir, "samples")) == ["samples_00000002.png"]


def test_non_default_bindings_leave_out_defaults():
  gin.clear_config()
  import tfadvgan.training.run  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  config.parse_gin([], ["make_optimizer.beta_2 = 0.999", "make_optimizer.beta_1 = 0.25",
                        "D/make_optimizer.learning_rate = 3e-4", "train.seed = 0",
                        "train.num_steps = 5"], finalize=False)
  try:
    assert config.non_default_bindings() == {
        "D/make_optimizer.learning_rate": 3e-4, "make_optimizer.beta_1": 0.25,
        "train.num_steps": 5}
  finally:
    gin.clear_config()
