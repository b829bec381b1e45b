"""Hyperparameters are checked at construction, with messages that name the gin binding to change.

Each family (GAN base, AS-GAN, DAT, Rob-GAN, Fast-RobGAN, penalties, attacks, optimizers) is fed
infinity, NaN and an out-of-range value; the message must name the exact binding, the value and the
allowed range. Also the gin parse errors: typos (with a suggestion), the nan literal, inf literals.
"""
import math

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import B, LinearACD, LinearACG, LinearD, LinearG  # pylint: disable=g-bad-import-order
from tfadvgan import attacks
from tfadvgan import errors
from tfadvgan import penalties
from tfadvgan.cli import common
from tfadvgan.gans.as_gan import ASGAN
from tfadvgan.gans.base import GAN
from tfadvgan.gans.dat import DAT
from tfadvgan.gans.fast_robgan import FastRobGAN
from tfadvgan.gans.robgan import RobGAN
from tfadvgan import optimizers

INF, NAN = float("inf"), float("nan")


def _message(fn):
  with pytest.raises(errors.ConfigError) as info:
    fn()
  text = str(info.value)
  assert "\n" not in common.strip_gin_context(text), text
  return common.strip_gin_context(text)


# ----------------------------------------------------------------- the helper itself
def test_check_float_messages():
  assert errors.check_float("ASGAN.epsilon", 0.25, low=0) == 0.25
  assert errors.check_float("GAN.ema_decay", None, low=0, allow_none=True) is None
  assert errors.check_float("x", np.float32(0.5), low=0, high=1) == 0.5
  assert (_message(lambda: errors.check_float("ASGAN.epsilon", INF, low=0))
          == "ASGAN.epsilon must be >= 0 (a finite number); got inf, which is not finite.")
  assert (_message(lambda: errors.check_float("ASGAN.epsilon", -INF, low=0))
          == "ASGAN.epsilon must be >= 0 (a finite number); got -inf, which is not finite.")
  assert (_message(lambda: errors.check_float("ASGAN.epsilon", NAN, low=0))
          == "ASGAN.epsilon must be >= 0 (a finite number); got nan, which is not a number.")
  assert (_message(lambda: errors.check_float("GAN.ema_decay", 1.0, low=0, high=1,
                                              high_inclusive=False, allow_none=True))
          == "GAN.ema_decay must be in [0, 1) (a finite number) or None; got 1.")
  assert (_message(lambda: errors.check_float("lr", 0.0, low=0, low_inclusive=False))
          == "lr must be > 0 (a finite number); got 0.")
  assert (_message(lambda: errors.check_float("w", "0.1", low=0))
          == "w must be >= 0 (a finite number); got '0.1'.")
  assert _message(lambda: errors.check_float("flag", True)) == (
      "flag must be a finite number; got True.")
  # The bounds themselves, inclusive or not.
  assert errors.check_float("x", 0.0, low=0) == 0.0
  assert errors.check_float("x", 1.0, low=0, high=1) == 1.0


def test_check_int_messages():
  assert errors.check_int("ASGAN.pgd_steps", 3, low=1) == 3
  assert errors.check_int("train.num_steps", 1e3, low=1) == 1000  # gin reads 1e3 as a float
  assert (_message(lambda: errors.check_int("ASGAN.pgd_steps", 0, low=1))
          == "ASGAN.pgd_steps must be an integer >= 1; got 0.")
  assert (_message(lambda: errors.check_int("ASGAN.pgd_steps", 2.5, low=1))
          == "ASGAN.pgd_steps must be an integer >= 1; got 2.5.")
  assert (_message(lambda: errors.check_int("ASGAN.ramp_steps", INF, low=0))
          == "ASGAN.ramp_steps must be an integer >= 0; got inf, which is not finite.")
  assert (_message(lambda: errors.check_int("ASGAN.ramp_steps", NAN, low=0))
          == "ASGAN.ramp_steps must be an integer >= 0; got nan, which is not a number.")


def test_knob_spec_checks_converts_and_names_the_binding():
  knobs = (errors.Knob("rate", float, low=0, low_inclusive=False),
           errors.Knob("size", float, low=0, allow_none=True, hint="(None: rate / 5)"),
           errors.Knob("steps", int, low=1),
           errors.Knob("mode", ("sign", "raw", "l2")),
           errors.Knob("on", bool))
  values = {"rate": np.float32(0.25), "size": None, "steps": 3e0, "mode": "raw", "on": 0,
            "other": object()}
  checked = errors.check_knobs("Thing", knobs, values)
  assert checked == {"rate": 0.25, "size": None, "steps": 3, "mode": "raw", "on": False}
  assert [type(v) for v in checked.values()] == [float, type(None), int, str, bool]
  bad = [("rate", 0.0, "Thing.rate must be > 0 (a finite number); got 0."),
         ("size", -1.0, "Thing.size must be >= 0 (a finite number) or None; got -1. (None: rate "
                        "/ 5)"),
         ("steps", 1.5, "Thing.steps must be an integer >= 1; got 1.5."),
         ("mode", "pgd", "Unknown Thing.mode 'pgd'. Choose one of: sign, raw, l2."),
         ("mode", ["sign"], "Unknown Thing.mode ['sign']. Choose one of: sign, raw, l2.")]
  for name, value, message in bad:
    assert _message(lambda n=name, v=value: errors.check_knobs(
        "Thing", knobs, dict(values, **{n: v}))) == message
  # The first bad knob in the table's order is the one reported.
  assert _message(lambda: errors.check_knobs("Thing", knobs, dict(values, rate=-1, steps=0))
                  ).startswith("Thing.rate")

  class Holder:
    pass
  holder = Holder()
  assert errors.set_knobs(holder, "Thing", knobs, values) == checked
  assert vars(holder) == checked


def test_every_method_knob_table_names_constructor_arguments():
  """A Knob whose name is not an argument of its constructor would fail with a KeyError."""
  import inspect  # pylint: disable=g-import-not-at-top
  from tfadvgan.gans import as_gan, base, dat, fast_robgan, robgan  # pylint: disable=g-import-not-at-top
  from tfadvgan.training import finetune  # pylint: disable=g-import-not-at-top
  for cls, tables in ((GAN, (base.KNOBS, base.LECAM_KNOBS)), (ASGAN, (as_gan.KNOBS,)),
                      (DAT, (dat.KNOBS,)), (RobGAN, (robgan.KNOBS,)),
                      (FastRobGAN, (fast_robgan.KNOBS,)),
                      (finetune.ClassifierFinetuner, (finetune.KNOBS,))):
    params = inspect.signature(cls.__init__).parameters
    for table in tables:
      missing = [k.name for k in table if k.name not in params and cls is not GAN]
      assert not missing, (cls, missing)


# ----------------------------------------------------------------- the methods
def _gan(cls=GAN, **kwargs):
  return cls(LinearG(), LinearD(), **kwargs)


def _ac(cls, **kwargs):
  extra = {"batch_size": B} if cls is FastRobGAN else {}
  return cls(LinearACG(), LinearACD(), conditional=True, **extra, **kwargs)


# (constructor, argument, binding, allowed range text, an out-of-range value, its text)
FLOAT_KNOBS = [
    (_gan, "penalty_weight", "GAN.penalty_weight", ">= 0", -1.0, "-1"),
    (_gan, "clip_value", "GAN.clip_value", "> 0", 0.0, "0"),
    (_gan, "ema_decay", "GAN.ema_decay", "in [0, 1)", 1.5, "1.5"),
    (lambda **k: _gan(ASGAN, **k), "epsilon", "ASGAN.epsilon", ">= 0", -0.1, "-0.1"),
    (lambda **k: _gan(ASGAN, **k), "step_size", "ASGAN.step_size", ">= 0", -0.01, "-0.01"),
    (lambda **k: _gan(DAT, **k), "epsilon", "DAT.epsilon", ">= 0", -0.2, "-0.2"),
    (lambda **k: _gan(DAT, **k), "clean_weight", "DAT.clean_weight", ">= 0", -3.0, "-3"),
    (lambda **k: _gan(DAT, **k), "adv_weight", "DAT.adv_weight", ">= 0", -1.0, "-1"),
    (lambda **k: _ac(RobGAN, **k), "epsilon", "RobGAN.epsilon", ">= 0", -0.5, "-0.5"),
    (lambda **k: _ac(RobGAN, **k), "step_size", "RobGAN.step_size", ">= 0", -0.25, "-0.25"),
    (lambda **k: _ac(RobGAN, **k), "attack_adv_weight", "RobGAN.attack_adv_weight", ">= 0", -2.0,
     "-2"),
    (lambda **k: _ac(RobGAN, **k), "attack_class_weight", "RobGAN.attack_class_weight", ">= 0",
     -2.0, "-2"),
    (lambda **k: _ac(RobGAN, **k), "class_weight", "RobGAN.class_weight", ">= 0", -1.5, "-1.5"),
    (lambda **k: _ac(RobGAN, **k), "g_class_weight", "RobGAN.g_class_weight", ">= 0", -1.5,
     "-1.5"),
    (lambda **k: _ac(FastRobGAN, **k), "epsilon", "FastRobGAN.epsilon", ">= 0", -0.02, "-0.02"),
    (lambda **k: _ac(FastRobGAN, **k), "step_size", "FastRobGAN.step_size", ">= 0", -0.02,
     "-0.02"),
    (lambda **k: _ac(FastRobGAN, **k), "class_weight", "FastRobGAN.class_weight", ">= 0", -1.0,
     "-1"),
    (lambda **k: _ac(FastRobGAN, **k), "kl_weight", "FastRobGAN.kl_weight", ">= 0", -1.0, "-1"),
    (lambda **k: _ac(FastRobGAN, **k), "g_class_weight", "FastRobGAN.g_class_weight", ">= 0",
     -0.2, "-0.2"),
]


@pytest.mark.parametrize("make,arg,binding,allowed,bad,bad_text", FLOAT_KNOBS,
                         ids=[k[2] for k in FLOAT_KNOBS])
def test_method_float_knobs(make, arg, binding, allowed, bad, bad_text):
  for value, text in ((INF, "inf, which is not finite"), (NAN, "nan, which is not a number"),
                      (bad, bad_text)):
    message = _message(lambda v=value: make(**{arg: v}))
    assert message.startswith(f"{binding} must be {allowed} (a finite number)"), message
    assert message.endswith(f"; got {text}."), message


INT_KNOBS = [
    (_gan, "n_dis", "GAN.n_dis", ">= 1", 0),
    (_gan, "ema_start_step", "GAN.ema_start_step", ">= 0", -1),
    (lambda **k: _gan(ASGAN, **k), "warmup_steps", "ASGAN.warmup_steps", ">= 0", -5),
    (lambda **k: _gan(ASGAN, **k), "ramp_steps", "ASGAN.ramp_steps", ">= 0", -5),
    (lambda **k: _gan(ASGAN, **k), "pgd_steps", "ASGAN.pgd_steps", ">= 1", 0),
    (lambda **k: _ac(RobGAN, **k), "pgd_steps", "RobGAN.pgd_steps", ">= 1", 0),
    (lambda **k: _ac(FastRobGAN, **k), "replays", "FastRobGAN.replays", ">= 1", 0),
]


@pytest.mark.parametrize("make,arg,binding,allowed,bad", INT_KNOBS, ids=[k[2] for k in INT_KNOBS])
def test_method_step_counts(make, arg, binding, allowed, bad):
  for value, text in ((INF, "inf, which is not finite"), (bad, str(bad)), (1.5, "1.5")):
    message = _message(lambda v=value: make(**{arg: v}))
    assert message == f"{binding} must be an integer {allowed}; got {text}.", message


def test_inf_epsilon_is_refused_before_training():
  """The reported case: ASGAN.epsilon = 1e999 (gin reads it as inf) ran and 'diverged'."""
  gin.parse_config("ASGAN.epsilon = 1e999")
  assert gin.query_parameter("ASGAN.epsilon") == INF
  assert (_message(lambda: _gan(ASGAN))
          == "ASGAN.epsilon must be >= 0 (a finite number); got inf, which is not finite.")


def test_dat_weight_message_names_the_one_and_its_value():
  assert (_message(lambda: _gan(DAT, clean_weight=1.0, adv_weight=-0.5))
          == "DAT.adv_weight must be >= 0 (a finite number); got -0.5.")
  assert (_message(lambda: _gan(DAT, clean_weight=-2.0, adv_weight=1.0))
          == "DAT.clean_weight must be >= 0 (a finite number); got -2.")


def test_robgan_both_attack_weights_zero():
  assert "RobGAN.attack_adv_weight and RobGAN.attack_class_weight are both 0" in _message(
      lambda: _ac(RobGAN, attack_adv_weight=0.0, attack_class_weight=0.0))


def test_valid_values_still_construct():
  gan = _gan(ASGAN, epsilon=0.0, warmup_steps=1e3, pgd_steps=2, penalty_weight=None,
             clip_value=0.01)
  assert (gan.epsilon, gan.warmup_steps, gan.pgd_steps, gan.clip_value) == (0.0, 1000, 2, 0.01)
  assert _gan(DAT, clean_weight=0.0, adv_weight=2.0).adv_weight == 2.0


# ----------------------------------------------------------------- penalties
def test_penalty_bindings_checked_at_construction():
  gin.parse_config("penalty_wgan_gp.target = 1e999")
  assert (_message(lambda: _gan(penalty="wgan_gp"))
          == "penalty_wgan_gp.target must be >= 0 (a finite number); got inf, which is not finite.")
  gin.clear_config()
  gin.parse_config("penalty_wgan_lp.target = -1.0")
  assert (_message(lambda: _gan(penalty="wgan_lp"))
          == "penalty_wgan_lp.target must be >= 0 (a finite number); got -1.")
  gin.clear_config()
  gin.parse_config("penalty_wgan_alp.xi = 0.0")
  assert (_message(lambda: _gan(penalty="wgan_alp"))
          == "penalty_wgan_alp.xi must be > 0 (a finite number); got 0.")
  gin.clear_config()
  gin.parse_config("penalty_wgan_alp.epsilon_range = (0.5, 0.1)")
  assert _message(lambda: _gan(penalty="wgan_alp")).startswith(
      "penalty_wgan_alp.epsilon_range[1] must be >= 0.5 (a finite number); got 0.1.")
  gin.clear_config()
  gin.parse_config("penalty_wgan_alp.lipschitz_constant = 1e999")
  assert "penalty_wgan_alp.lipschitz_constant" in _message(lambda: _gan(penalty="wgan_alp"))
  # A penalty that is not used is not checked: its bindings do not matter.
  assert _gan(penalty="wgan_gp").penalty_weight == 10.0


def test_penalty_direct_calls_check_too():
  rng = np.random.default_rng(11)
  x = tf.constant(rng.normal(size=(3, 2)), tf.float32)
  d_fn = lambda v: tf.reduce_sum(v, axis=1)  # noqa: E731
  seed = tf.constant([1, 2], tf.int32)
  assert "penalty_wgan_gp.target" in _message(
      lambda: penalties.wgan_gp(d_fn, x, x, seed=seed, target=NAN))
  assert "penalty_wgan_alp.xi" in _message(
      lambda: penalties.wgan_alp(d_fn, x, x, seed=seed, xi=INF))
  assert (_message(lambda: penalties.clip_weights([tf.Variable([1.0])], INF))
          == "GAN.clip_value must be > 0 (a finite number); got inf, which is not finite.")


# ----------------------------------------------------------------- attacks
def test_attack_epsilons_and_ranges():
  rng = np.random.default_rng(12)
  x = tf.constant(rng.uniform(-1, 1, size=(2, 3)), tf.float32)
  loss = lambda v: tf.reduce_sum(v, axis=1)  # noqa: E731
  seed = tf.constant([3, 4], tf.int32)
  assert (_message(lambda: attacks.fgsm(x, loss, INF))
          == "attack_fgsm.epsilon must be >= 0 (a finite number); got inf, which is not finite.")
  assert (_message(lambda: attacks.pgd(x, loss, 0.1, 2, NAN))
          == "attack_pgd.step_size must be >= 0 (a finite number); got nan, which is not a number.")
  assert (_message(lambda: attacks.gaussian(x, -0.5, seed))
          == "attack_gaussian.epsilon must be >= 0 (a finite number); got -0.5.")
  assert "attack_targeted_one_step.epsilon" in _message(
      lambda: attacks.targeted_one_step(x, loss, 0.0, INF))
  assert (_message(lambda: attacks.fgsm(x, loss, 0.1, clip_min=1.0, clip_max=-1.0))
          == "attack_fgsm.clip_min must be below attack_fgsm.clip_max; got clip_min = 1.0, "
             "clip_max = -1.0.")
  assert "attack_pgd.clip_max" in _message(lambda: attacks.pgd(x, loss, 0.1, 1, 0.1, clip_max=INF))
  assert "FastRobGAN.step_size" in _message(
      lambda: attacks.free_delta_update(x, x, NAN, 0.1))
  # Tensors (the ramped epsilon inside a step) are not checked here.
  assert attacks.fgsm(x, loss, tf.constant(0.0)).shape == x.shape


def test_attack_bindings_checked_at_construction():
  gin.parse_config("attack_pgd.clip_min = 1e999")
  assert (_message(lambda: _gan(ASGAN, attack="pgd"))
          == "attack_pgd.clip_min must be a finite number; got inf, which is not finite.")
  assert "attack_pgd.clip_min" in _message(lambda: _ac(RobGAN))
  gin.clear_config()
  gin.parse_config("attack_targeted_one_step.clip_max = -2.0")
  assert (_message(lambda: _gan(DAT))
          == "attack_targeted_one_step.clip_min must be below attack_targeted_one_step.clip_max; "
             "got clip_min = -1.0, clip_max = -2.0.")


# ----------------------------------------------------------------- optimizers
def test_optimizer_messages_name_the_scoped_binding():
  with gin.config_scope("D"):
    assert (_message(lambda: optimizers.make_optimizer(learning_rate=-1.0))
            == "D/make_optimizer.learning_rate must be > 0 (a finite number); got -1. Set "
               "D/make_optimizer.learning_rate (or make_optimizer.learning_rate for both "
               "networks).")
  with gin.config_scope("G"):
    assert _message(lambda: optimizers.make_optimizer(beta_1=1.0)).startswith(
        "G/make_optimizer.beta_1 must be in [0, 1) (a finite number); got 1.")
    assert _message(lambda: optimizers.make_optimizer(beta_2=NAN)).startswith(
        "G/make_optimizer.beta_2 must be in [0, 1) (a finite number); got nan")
  assert (_message(lambda: optimizers.make_optimizer(learning_rate=INF))
          == "make_optimizer.learning_rate must be > 0 (a finite number); got inf, which is not "
             "finite.")
  assert _message(lambda: optimizers.make_optimizer(decay_steps=100, decay_rate=INF)).startswith(
      "make_optimizer.decay_rate must be > 0 (a finite number); got inf")
  assert _message(lambda: optimizers.make_optimizer(decay_steps=0, decay_rate=0.5)).startswith(
      "make_optimizer.decay_steps must be > 0 (a finite number); got 0.")
  assert "Set both make_optimizer.decay_steps and make_optimizer.decay_rate" in _message(
      lambda: optimizers.make_optimizer(decay_steps=10))
  opt = optimizers.make_optimizer(learning_rate=3e-4, beta_1=0.0, beta_2=0.9)
  assert isinstance(opt, keras.optimizers.Adam)
  assert math.isclose(optimizers.current_learning_rate(opt), 3e-4, rel_tol=1e-6)


def test_learning_rate_binding_message_through_gin():
  """As train.py sees it: gin adds "In call to configurable ... in scope 'D'"; the CLI strips it."""
  gin.parse_config("D/make_optimizer.learning_rate = -1")
  with pytest.raises(errors.ConfigError) as info:
    with gin.config_scope("D"):
      optimizers.make_optimizer()
  assert "in scope 'D'" in str(info.value)  # gin's own context, dropped by the CLI
  assert (common.strip_gin_context(str(info.value))
          == "D/make_optimizer.learning_rate must be > 0 (a finite number); got -1. Set "
             "D/make_optimizer.learning_rate (or make_optimizer.learning_rate for both networks).")


# ----------------------------------------------------------------- gin parse errors
def _parse_error(params, files=()):
  with pytest.raises(errors.ConfigError) as info:
    common.parse_gin(list(files), params)
  text = str(info.value)
  assert "\n" not in text, text
  return text


def test_typo_in_parameter_suggests_the_closest_name():
  from tfadvgan.training import run as loop  # noqa: F401  pylint: disable=unused-import
  assert (_parse_error(["train.num_step = 2"])
          == "Unknown gin binding train.num_step (in --gin_param 'train.num_step = 2'): train has "
             "no parameter 'num_step'; did you mean train.num_steps?")
  assert (_parse_error(["D/make_optimizer.learning_rte = 1e-4"])
          == "Unknown gin binding D/make_optimizer.learning_rte (in --gin_param "
             "'D/make_optimizer.learning_rte = 1e-4'): make_optimizer has no parameter "
             "'learning_rte'; did you mean D/make_optimizer.learning_rate?")


def test_typo_in_configurable_suggests_the_closest_name():
  from tfadvgan.training import run as loop  # noqa: F401  pylint: disable=unused-import
  assert (_parse_error(["trian.num_steps = 2"])
          == "Unknown gin configurable 'trian' (in --gin_param 'trian.num_steps = 2'); did you "
             "mean train?")
  assert (_parse_error(["zzzzqqq.num_steps = 2"])
          == "Unknown gin configurable 'zzzzqqq' (in --gin_param 'zzzzqqq.num_steps = 2').")


def test_typo_through_kwargs_is_caught_at_parse_time():
  """ASGAN takes **kwargs (passed to GAN), so gin itself accepts any name there."""
  assert (_parse_error(["ASGAN.epsilom = 0.1"])
          == "Unknown gin binding ASGAN.epsilom: ASGAN has no parameter 'epsilom'; did you mean "
             "ASGAN.epsilon?")
  gin.clear_config()
  common.parse_gin([], ["ASGAN.n_dis = 2", "ASGAN.epsilon = 0.1"])  # GAN's own arguments pass
  assert gin.query_parameter("ASGAN.n_dis") == 2


RENAMED = [  # (old binding, its configurable's new name for the same knob)
    ("ASGAN.pgd_step_size = 0.01", "ASGAN.step_size"),
    ("ASGAN.pgd_random_start = False", "ASGAN.random_start"),
    ("RobGAN.pgd_step_size = 0.01", "RobGAN.step_size"),
    ("DAT.step = 'raw'", "DAT.direction"),
    ("DAT.lambda_clean = 0.0", "DAT.clean_weight"),
    ("DAT.lambda_adv = 2.0", "DAT.adv_weight"),
    ("finetune_classifier.lam = 0.3", "finetune_classifier.fake_weight"),
    ("finetune_classifier.pgd_step_size = 0.01", "finetune_classifier.step_size"),
]


@pytest.mark.parametrize("binding,new", RENAMED, ids=[r[0].split(" ")[0] for r in RENAMED])
def test_a_renamed_knob_suggests_its_new_name(binding, new):
  from tfadvgan.training import finetune  # noqa: F401  pylint: disable=unused-import
  old = binding.split(" ")[0]
  selector, param = old.split(".")
  message = _parse_error([binding])
  assert message.startswith(f"Unknown gin binding {old}"), message
  assert message.endswith(f"{selector} has no parameter {param!r}; did you mean {new}?"), message
  assert new.split(".")[1] in inspect_parameters(selector)  # the suggestion is a real knob
  gin.clear_config()
  common.parse_gin([], [f"{new} = {binding.split(' = ')[1]}"])  # and the new name parses


def test_a_renamed_knob_suggests_its_new_name_in_scopes_and_before_import():
  """The scoped form, and the check of scripts/gin_check.py that runs before TF is imported."""
  from tfadvgan.cli import gin_check  # pylint: disable=g-import-not-at-top
  assert _parse_error(["s/DAT.lambda_adv = 2.0"]).endswith(
      "DAT has no parameter 'lambda_adv'; did you mean s/DAT.adv_weight?")
  with pytest.raises(errors.ConfigError) as info:
    gin_check.check([], ["ASGAN.pgd_random_start = False"])
  assert str(info.value).endswith(
      "ASGAN has no parameter 'pgd_random_start'; did you mean ASGAN.random_start?"), info.value


def inspect_parameters(selector):
  """The parameters gin's registered `selector` accepts (through **kwargs up its bases)."""
  from tfadvgan import config  # pylint: disable=g-import-not-at-top
  configurable = gin.config._REGISTRY.get_match(selector)  # pylint: disable=protected-access
  return config._accepted_parameters(configurable)  # pylint: disable=protected-access


def test_nan_and_inf_literals(tmp_path):
  assert (_parse_error(["ASGAN.epsilon = nan"])
          == "Bad gin value 'nan' in --gin_param 'ASGAN.epsilon = nan': gin has no nan/inf "
             "literal, and hyperparameters must be finite. Write a finite number, e.g. "
             "ASGAN.epsilon = 0.01.")
  assert "gin has no nan/inf literal" in _parse_error(["DAT.adv_weight = inf"])
  path = tmp_path / "bad.gin"
  path.write_text("DAT.epsilon = 0.01\nDAT.adv_weight = -inf\n")
  assert (_parse_error([], [str(path)])
          == f"Bad gin value '-inf' in {path} line 2: gin has no nan/inf literal, and "
             "hyperparameters must be finite. Write a finite number, e.g. DAT.adv_weight = 0.01.")
  assert "<ast.Name object" not in _parse_error(["ASGAN.epsilon = nan"])


def test_unquoted_string_says_to_quote_it():
  assert (_parse_error(["dataset.source = cifar11"])
          == "Bad gin value 'cifar11' in --gin_param 'dataset.source = cifar11': strings need "
             "quotes (e.g. dataset.source = 'cifar11'), numbers must be plain literals (1e-4, "
             "0.5).")
