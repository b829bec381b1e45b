"""Rob-GAN (Sec. 3.3, Eqs. 8-10) on linear models with an auxiliary-classifier head, where the PGD
attack, every loss and every update are closed-form; plus the fine-tuning stage end to end."""

import json
import os
import re

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import (B, CLASSES, LinearACD, LinearACG, LinearD, LinearG, ROOT,  # pylint: disable=g-bad-import-order
                     ac_arrays as arrays, ac_dataset as dataset, d_params, make_ac as make, onehot,
                     sigmoid, small_npz, softmax)
from tfadvgan import errors
from tfadvgan.training import finetune
from tfadvgan.training import finetune_run as finetune_run_lib
from tfadvgan.gans.robgan import RobGAN
from tfadvgan.training import run as loop
from tfadvgan.training import engine

# The attacked loss's two weights (the release's are 0.5 / 0.5, which would hide a swap).
ADV_W, CLS_W = 0.3, 0.8


# ------------------------------------------------------------------ NumPy reference
def attack_loss(x, y, params, adv_w=ADV_W, cls_w=CLS_W):
  w, c, v, b = params
  t = (x @ w)[:, 0] + c[0]
  logits = x @ v + b
  ce = -np.log(softmax(logits)[np.arange(len(y)), y])
  return adv_w * np.logaddexp(0, -t) + cls_w * ce


def numpy_pgd(x, y, params, eps, steps, alpha, adv_w=ADV_W, cls_w=CLS_W):
  """Sign steps on adv_w * softplus(-t) + cls_w * CE, projected to the ball and [-1, 1]."""
  w, c, v, b = params
  x_adv = x.copy()
  for _ in range(steps):
    t = (x_adv @ w)[:, 0] + c[0]
    p = softmax(x_adv @ v + b)
    grad = (adv_w * -sigmoid(-t))[:, None] * w[:, 0][None] + cls_w * (p - onehot(y)) @ v.T
    x_adv = np.clip(x + np.clip(x_adv + alpha * np.sign(grad) - x, -eps, eps), -1, 1)
  return x_adv


# ------------------------------------------------------------------ the attack
def test_pgd_stays_in_the_ball_and_range_and_increases_the_attacked_loss():
  data = arrays()
  x, y = data["images"][:, 0], data["labels"][:, 0]
  eps = 0.25
  gan = make(epsilon=eps, step_size=0.1, attack_adv_weight=ADV_W, attack_class_weight=CLS_W)
  params = d_params(gan)
  seed = tf.constant([1, 2], tf.int32)
  # The attacked loss is convex in x for a linear D, so every projected sign step is an ascent
  # step: f(x + d) >= f(x) + grad . d = f(x) + sum |grad_j| |d_j| >= f(x).
  previous = attack_loss(x, y, params)
  for steps in range(1, 7):
    gan.pgd_steps = steps
    x_adv = gan.attack(tf.constant(x), tf.constant(y), seed).numpy()
    assert np.max(np.abs(x_adv - x)) <= eps + 1e-6
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    np.testing.assert_allclose(x_adv, numpy_pgd(x, y, params, eps, steps, 0.1), atol=1e-5)
    current = attack_loss(x_adv, y, params)
    assert np.all(current >= previous - 1e-6)
    previous = current
  assert np.all(previous > attack_loss(x, y, params))
  # The clip to [-1, 1] was active (first coordinate starts at +-0.98).
  assert np.any(np.abs(x_adv[:, 0]) == 1.0)
  # Random start: still inside both sets.
  gan.random_start = True
  x_rand = gan.attack(tf.constant(x), tf.constant(y), seed).numpy()
  assert np.max(np.abs(x_rand - x)) <= eps + 1e-6 and np.abs(x_rand).max() <= 1.0


@pytest.mark.parametrize("attack_training", [False, True])
def test_attack_runs_d_in_inference_mode_by_default(attack_training):
  data = arrays()
  gan = make(epsilon=0.1, pgd_steps=3, attack_training=attack_training)
  gan.discriminator.modes.clear()
  gan.attack(tf.constant(data["images"][:, 0]), tf.constant(data["labels"][:, 0]),
             tf.constant([0, 0], tf.int32))
  assert gan.discriminator.modes and set(gan.discriminator.modes) == {attack_training}


def test_epsilon_zero_skips_the_attack():
  data = arrays()
  gan = make(epsilon=0.0)
  x = tf.constant(data["images"][:, 0])
  assert gan.attack(x, tf.constant(data["labels"][:, 0]), tf.constant([0, 0])) is x


# ------------------------------------------------------------------ the losses and updates
@pytest.mark.parametrize("class_loss", ["split", "acgan"])
def test_split_loss_gives_d_no_gradient_from_fake_classification(class_loss):
  gan = make(class_loss=class_loss)
  rng = np.random.default_rng(3)
  real_logits = tf.constant(rng.normal(size=(B, CLASSES)).astype("f4"))
  fake_logits = tf.constant(rng.normal(size=(B, CLASSES)).astype("f4"))
  labels = tf.constant(rng.integers(0, CLASSES, B).astype("i4"))
  fake_labels = tf.constant(rng.integers(0, CLASSES, B).astype("i4"))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([real_logits, fake_logits])
    terms = gan.class_loss_terms({"class_logits": real_logits}, labels,
                                 {"class_logits": fake_logits}, fake_labels)
    total = tf.reduce_sum(terms)
  g_real = tape.gradient(total, real_logits).numpy()
  g_fake = tape.gradient(total, fake_logits)
  np.testing.assert_allclose(g_real, softmax(real_logits.numpy()) - onehot(labels.numpy()),
                             atol=1e-6)
  if class_loss == "split":
    assert g_fake is None
  else:
    np.testing.assert_allclose(g_fake.numpy(),
                               softmax(fake_logits.numpy()) - onehot(fake_labels.numpy()),
                               atol=1e-6)


@pytest.mark.parametrize("class_loss, epsilon", [("split", 0.0), ("acgan", 0.0), ("split", 0.2)])
def test_one_train_step_matches_the_closed_form(class_loss, epsilon):
  """Non-saturating loss, SGD: D update on PGD reals (Eq. 9 or 8), then the G update."""
  lr, g_lr, cw, gcw = 0.1, 0.05, 0.7, 1.3
  data = arrays()
  gan = make(lr=lr, g_lr=g_lr, loss="non_saturating", class_loss=class_loss, class_weight=cw,
             g_class_weight=gcw, epsilon=epsilon, pgd_steps=2, step_size=0.1,
             attack_adv_weight=ADV_W, attack_class_weight=CLS_W)
  w, c, v, b = d_params(gan)
  k, bg = [p.numpy().astype(np.float64) for p in gan.generator.weights]
  x, y = data["images"][:, 0].astype(np.float64), data["labels"][:, 0]
  if epsilon:
    x = numpy_pgd(x, y, [w, c, v, b], epsilon, 2, 0.1)
  fake, y_f = data["z_d"][:, 0] @ k + bg, data["y_d"][:, 0]
  t_r, t_f = (x @ w)[:, 0] + c, (fake @ w)[:, 0] + c
  # d/dt softplus(-t) = -sigmoid(-t); d/dt softplus(t) = sigmoid(t); CE grad = p - onehot.
  g_t_r, g_t_f = -sigmoid(-t_r) / B, sigmoid(t_f) / B
  g_l_r = cw * (softmax(x @ v + b) - onehot(y)) / B
  g_l_f = (cw * (softmax(fake @ v + b) - onehot(y_f)) / B if class_loss == "acgan"
           else np.zeros((B, CLASSES)))
  w1 = w - lr * (x.T @ g_t_r + fake.T @ g_t_f)[:, None]
  c1 = c - lr * (g_t_r.sum() + g_t_f.sum())
  v1 = v - lr * (x.T @ g_l_r + fake.T @ g_l_f)
  b1 = b - lr * (g_l_r.sum(0) + g_l_f.sum(0))
  # G: softplus(-t) + gcw * CE through x_f = z K + b.
  z, y_g = data["z_g"].astype(np.float64), data["y_g"]
  x_g = z @ k + bg
  t_g = (x_g @ w1)[:, 0] + c1
  g_x = ((-sigmoid(-t_g))[:, None] * w1[:, 0][None]
         + gcw * (softmax(x_g @ v1 + b1) - onehot(y_g)) @ v1.T) / B
  k1, bg1 = k - g_lr * z.T @ g_x, bg - g_lr * g_x.sum(0)
  logs = engine.fit(gan, dataset(data), 1)
  for got, want in zip(d_params(gan), (w1, c1, v1, b1)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(gan.generator.weights[0].numpy(), k1, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(gan.generator.weights[1].numpy(), bg1, rtol=1e-4, atol=1e-5)
  ce_real = -np.log(softmax(x @ v + b)[np.arange(B), y])
  np.testing.assert_allclose(logs["class_real"], ce_real.mean(), rtol=1e-4)


# ------------------------------------------------------------------ errors
def test_plain_head_and_unconditional_runs_are_refused():
  with pytest.raises(errors.ConfigError, match="head = 'ac'"):
    make(head="plain")
  with pytest.raises(errors.ConfigError, match="class-conditional"):
    RobGAN(LinearACG(), LinearACD(), conditional=False)
  with pytest.raises(errors.ConfigError, match="acgan"):
    make(class_loss="ac")
  with pytest.raises(errors.ConfigError, match="no labels"):
    loop.build_gan((32, 32, 1), 0, method="robgan")


def test_conditional_method_on_a_batch_without_labels_is_refused():
  data = arrays()
  del data["labels"]
  gan = make()
  with pytest.raises(errors.ConfigError, match="no labels"):
    engine.fit(gan, dataset(data), 1)


# ------------------------------------------------------------------ fine-tuning (Eq. 10)
@pytest.mark.parametrize("lam", [0.0, 0.3])  # not 0.5, where lam == 1 - lam
def test_finetune_step_is_eq10(lam):
  """One SGD step on CE(f(x_r^adv), y) + lam * CE(f(x_f^adv), y_f), attack off to isolate it."""
  lr = 0.2
  data = arrays()
  gan = make()
  w, c, v, b = d_params(gan)
  k, bg = [p.numpy().astype(np.float64) for p in gan.generator.weights]
  x, y = data["images"][:, 0].astype(np.float64), data["labels"][:, 0]
  z, y_f = data["z_g"], data["y_g"]
  trainer = finetune.ClassifierFinetuner(gan, fake_weight=lam, epsilon=0.0, optimizer="sgd",
                                         learning_rate=lr, momentum=0.0, weight_decay=0.0,
                                         stage_steps=(1,))
  logs = trainer.step(tf.constant(x, tf.float32), tf.constant(y), tf.constant(z),
                      tf.constant(y_f), tf.constant([0, 0]))
  fake = z @ k + bg
  g_r = (softmax(x @ v + b) - onehot(y)) / B
  g_f = lam * (softmax(fake @ v + b) - onehot(y_f)) / B
  np.testing.assert_allclose(d_params(gan)[2], v - lr * (x.T @ g_r + fake.T @ g_f), atol=1e-5)
  np.testing.assert_allclose(d_params(gan)[0], w, atol=0)  # the real/fake logit is untouched
  want = -np.log(softmax(x @ v + b)[np.arange(B), y]).mean()
  np.testing.assert_allclose(float(logs["ce_real"]), want, rtol=1e-5)


def test_finetune_logs_and_divergence_check_stay_on_the_device():
  """`logged_step` sums the logs on the device; `read_window` gives their means (those `step`
  returns, one by one) and resets, and reports the first non-finite value with its step."""
  data = arrays()
  args = [tf.constant(data["images"][:, 0]), tf.constant(data["labels"][:, 0]),
          tf.constant(data["z_g"]), tf.constant(data["y_g"])]
  kwargs = dict(fake_weight=0.3, epsilon=0.0, optimizer="sgd", momentum=0.0, stage_steps=(10,))
  host = finetune.ClassifierFinetuner(make(), learning_rate=0.1, **kwargs)
  device = finetune.ClassifierFinetuner(make(), learning_rate=0.1, **kwargs)
  want = [host.step(*args, tf.constant([0, i])) for i in range(3)]
  for i in range(3):
    device.logged_step(*args, tf.constant([0, i]))
  got = device.read_window()
  assert sorted(got) == sorted(want[0]) and len(got) == 7
  for key in got:
    assert got[key] == pytest.approx(np.mean([float(w[key]) for w in want]), rel=1e-5), key
  device.logged_step(*args, tf.constant([0, 3]))
  last = host.step(*args, tf.constant([0, 3]))
  assert device.read_window()["loss"] == pytest.approx(float(last["loss"]), rel=1e-5)  # reset
  def poisoned():  # a NaN in each D weight: the fine-tuning diverges (learning rates must be finite)
    gan = make()
    for weight in gan.discriminator.trainable_variables:
      weight.assign(tf.tensor_scatter_nd_update(weight, [[0] * len(weight.shape)], [np.nan]))
    return gan
  host = finetune.ClassifierFinetuner(poisoned(), learning_rate=0.1, **kwargs)
  first_bad = next(i + 1 for i in range(10) if not all(
      np.isfinite(float(v)) for v in host.step(*args, tf.constant([0, i])).values()))
  diverging = finetune.ClassifierFinetuner(poisoned(), learning_rate=0.1, **kwargs)
  for i in range(first_bad + 2):  # later steps do not overwrite the first bad one
    diverging.logged_step(*args, tf.constant([0, i]))
  with pytest.raises(errors.ConfigError,
                     match=rf"diverged: \w+ = (nan|inf|-inf) at step {first_bad};"):
    diverging.read_window()


def test_finetune_defaults_are_the_release_eq10_version():
  """Adam at 1e-3, no weight decay, stages 2:2:1:1 (finetune.py's [20, 20, 10, 10] epochs)."""
  trainer = finetune.ClassifierFinetuner(make())
  assert isinstance(trainer.optimizer, keras.optimizers.Adam)
  assert trainer.weight_decay == 0.0 and trainer.base_learning_rate == 1e-3
  assert [s / min(trainer.stage_steps) for s in trainer.stage_steps] == [2, 2, 1, 1]
  assert trainer.fake_weight == 0.5


def test_finetune_stage_schedule_and_bad_knobs():
  gan = make()
  trainer = finetune.ClassifierFinetuner(gan, learning_rate=1.0, stage_steps=(2, 3, 1),
                                         stage_decay=0.1)
  assert trainer.total_steps == 6
  lrs = [float(trainer.learning_rate(s)) for s in range(6)]
  np.testing.assert_allclose(lrs, [1, 1, 0.1, 0.1, 0.1, 0.01], rtol=1e-6)
  with pytest.raises(errors.ConfigError, match="stage_steps"):
    finetune.ClassifierFinetuner(gan, stage_steps=())
  with pytest.raises(errors.ConfigError, match="head = 'ac'"):
    finetune.ClassifierFinetuner(_plain_gan())
  for knob, value, message in [
      ("learning_rate", float("inf"), "learning_rate must be > 0 (a finite number); got inf"),
      ("momentum", 1.0, "momentum must be in [0, 1) (a finite number); got 1"), ("fake_weight", float("nan"), "fake_weight must be"),
      ("stage_decay", 0.0, "stage_decay must be > 0")]:
    with pytest.raises(errors.ConfigError, match=re.escape(message)):
      finetune.ClassifierFinetuner(gan, **{knob: value})


def _plain_gan():
  from tfadvgan.gans.base import GAN  # pylint: disable=g-import-not-at-top
  return GAN(LinearG(), LinearD())


TINY = ["build_generator.width = 8", "build_discriminator.width = 8", "train.batch_size = 4",
        "train.num_steps = 2", "train.log_every_steps = 1", "train.checkpoint_every_steps = 1",
        "train.sample_every_steps = 2", "make_train_dataset.shuffle_buffer = 16",
        "train.verbose = 0", "build_gan.run_eagerly = True", "train.diagnose_every_steps = 0",
        "GAN.n_dis = 1", "RobGAN.pgd_steps = 2"]


def test_finetune_writes_a_run_that_restores_and_diagnoses(tmp_path):
  from tfadvgan.cli import common  # pylint: disable=g-import-not-at-top
  from tfadvgan.metrics import diagnostics  # pylint: disable=g-import-not-at-top
  model_dir, out_dir = str(tmp_path / "run"), str(tmp_path / "finetuned")
  gin.clear_config()
  common.parse_gin([os.path.join(ROOT, "gin_configs/robgan/robgan_fmnist.gin")],
                   TINY + ["dataset.source = 'npz'", f"dataset.path = '{small_npz(tmp_path)}'"])
  trained = loop.train(model_dir)
  d_before = [w.numpy().copy() for w in trained.discriminator.weights]
  g_before = [w.numpy().copy() for w in trained.generator.weights]
  summary = finetune_run_lib.finetune_run(model_dir, out_dir,
                                  ["finetune_classifier.stage_steps = (2, 1)",
                                   "finetune_classifier.batch_size = 4",
                                   "finetune_classifier.pgd_steps = 2",
                                   "finetune_classifier.fake_weight = 0.5"])
  assert summary["steps"] == 3 and summary["fake_weight"] == 0.5
  with open(os.path.join(out_dir, "finetune.json")) as f:
    assert json.load(f)["source_checkpoint"].endswith("ckpt-2")
  gan, info, path = loop.restore_run(out_dir)
  assert info["method"] == "robgan" and path.endswith("ckpt-2")
  assert any(not np.allclose(a, b.numpy()) for a, b in zip(d_before, gan.discriminator.weights))
  for a, b_ in zip(g_before, gan.generator.weights):
    np.testing.assert_array_equal(a, b_.numpy())
  rng = np.random.default_rng(1)
  images = rng.uniform(-1, 1, (6, 32, 32, 1)).astype("f4")
  acc = diagnostics.classifier_accuracy_under_pgd(
      diagnostics.discriminator_fn(gan), images, np.arange(6) % 10, epsilons=[0.0, 0.02],
      steps=2, batch_size=6)
  assert set(acc) == {0.0, 0.02} or len(acc) == 2
  with pytest.raises(errors.ConfigError, match="different"):
    finetune_run_lib.finetune_run(model_dir, model_dir, [])


@pytest.mark.parametrize("args, message", [  # 7 s each: two run with `-m slow`
    pytest.param(["--model_dir={tmp}/missing", "--out_dir={tmp}/out"], "does not exist",
                 marks=pytest.mark.slow),
    (["--model_dir={tmp}/run", "--out_dir={tmp}/run"], "different"),
    pytest.param(["--model_dir={tmp}/run"], "--out_dir is required", marks=pytest.mark.slow),
])
def test_finetune_cli_errors_are_one_clear_line(tmp_path, args, message):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "finetune.py")]
      + [a.format(tmp=tmp_path) for a in args],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert [line for line in lines if line.startswith("error:")] == lines[-1:], proc.stderr[-2000:]
  assert message in lines[-1]
  assert not os.path.exists(tmp_path / "out")
