"""The diagnose suite: the chosen diagnostics of a trained GAN on real examples and as many of its
samples, as one dict (``run_diagnostics``), plus Rob-GAN's train-vs-test comparison
(``generalization``). ``scripts/diagnose.py`` loads the run and the data, prints the headline and
writes the JSON and the figures this returns.

Which diagnostics apply is decided here: ``class_pgd`` and ``generalization`` need a classifier
(an auxiliary-classifier head, or an external one), ``modes`` a 2-D mixture, and ``dat`` checks the
first-order expansion of a DAT run's own attack (``dat.first_order_attack``).
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfadvgan import data as data_lib
from tfadvgan import errors
from tfadvgan import images as images_lib
from tfadvgan import rng
from tfadvgan.metrics import mode_coverage
from tfadvgan.metrics.diagnostics import batching
from tfadvgan.metrics.diagnostics import dat
from tfadvgan.metrics.diagnostics import gradients
from tfadvgan.metrics.diagnostics import robustness

WHICH = ("accuracy", "pgd_accuracy", "class_pgd", "dat", "gradients", "confidence", "wdist",
         "modes", "generalization")
NEEDS_CLASSES = ("class_pgd", "generalization")  # an AC head or an external classifier
NEEDS_FAKES = ("accuracy", "pgd_accuracy", "dat", "wdist")
MIXTURES = ("ring", "grid")


@dataclasses.dataclass(frozen=True)
class Settings:
  """The suite's settings; scripts/diagnose.py's flags of the same names (the same defaults)."""
  epsilons: tuple = (0.0, 0.00196078, 0.00392157, 0.00784314, 0.01568627)
  pgd_steps: int = 10
  class_epsilons: tuple = robustness.ROBGAN_EPSILONS
  class_pgd_steps: int = 20
  confidence_epsilon: float = 1.0 / 255
  dat_tolerance: float = 0.02
  dat_max_iters: int = 100
  dat_step_size: float = 1.0 / 255
  dat_value: str = "logit"
  bins: int = 50
  grid_num: int = 64
  mode_samples: int = 2500
  mode_num_std: float = 3.0
  mode_min_count: int = 1
  batch_size: int = 100
  seed: int = 0
  training_mode: bool = False


def default_which(has_ac_head, has_classifier=False, dataset=None):
  """The diagnostics run when none are chosen: all that apply, but ``generalization`` (it loads a
  second split: only on request)."""
  return [w for w in WHICH if (w not in NEEDS_CLASSES or has_ac_head or has_classifier)
          and (w != "modes" or dataset in MIXTURES) and w != "generalization"]


def has_ac_head(gan):
  return getattr(gan.discriminator, "head", None) == "ac"


def make_fakes(gan, num, labels, seed, batch_size):
  """``num`` samples of the run's sampler (inference mode) and their labels (or None)."""
  g = gan.sampler()
  z = tf.random.stateless_normal([num, g.latent_dim], seed=[seed, rng.DIAGNOSE_Z])
  fake_labels = None
  if gan.conditional:
    fake_labels = (labels[:num] if labels is not None and len(labels) >= num
                   else (np.arange(num) % g.num_classes)).astype(np.int32)
  out = []
  for i in range(0, num, batch_size):
    lab = fake_labels[i:i + batch_size] if fake_labels is not None else None
    out.append(g(z[i:i + batch_size], lab, training=False).numpy())
  return np.concatenate(out).astype(np.float32), fake_labels


def _classifier_fn(model):
  return lambda x, labels=None: model(x, training=False)


class _Suite:
  """One run of the suite: the inputs every diagnostic shares, one method per diagnostic."""

  def __init__(self, gan, images, labels, settings, classifier, fakes):
    self.gan, self.images, self.labels, self.s = gan, images, labels, settings
    self.classifier = classifier
    self.d_fn = batching.discriminator_fn(gan, training=settings.training_mode)
    self.y = labels if gan.conditional else None
    self.fakes, self.fake_labels = fakes
    self.is_image = images.ndim == 4

  def accuracy(self, attack):
    s = self.s
    kw = dict(attack=attack, epsilons=s.epsilons, pgd_steps=s.pgd_steps, clip=self.is_image,
              batch_size=s.batch_size)
    result = {
        "attack": attack, "loss": "bce",
        "real": robustness.d_accuracy(self.d_fn, self.images, self.y, real=True, **kw),
        "fake": robustness.d_accuracy(self.d_fn, self.fakes, self.fake_labels, real=False, **kw)}
    if attack == "pgd":
      result.update(steps=s.pgd_steps, step_size="2.5 * eps / steps")
    return result

  def class_pgd(self, results):
    s = self.s
    errors.check(self.labels is not None, "class_pgd needs a labelled dataset.")
    kw = dict(epsilons=s.class_epsilons, steps=s.class_pgd_steps, clip=self.is_image,
              batch_size=s.batch_size)
    if has_ac_head(self.gan):
      results["class_pgd"] = {
          "steps": s.class_pgd_steps, "step_size": "eps / 5",
          "accuracy": robustness.classifier_accuracy_under_pgd(self.d_fn, self.images,
                                                               self.labels, **kw)}
    if self.classifier is not None:
      model, record = self.classifier
      results["class_pgd_classifier"] = {
          **record, "steps": s.class_pgd_steps, "step_size": "eps / 5",
          "accuracy": robustness.classifier_accuracy_under_pgd(
              _classifier_fn(model), self.images, self.labels, **kw)}

  def dat(self):
    s = self.s
    result = dat.dat_attack_success(
        self.d_fn, self.images, self.fakes, loss=self.gan.loss_fn, tolerance=s.dat_tolerance,
        max_iters=s.dat_max_iters, step_size=s.dat_step_size, value=s.dat_value,
        real_labels=self.y, fake_labels=self.fake_labels, clip=self.is_image,
        batch_size=s.batch_size)
    # Eqs. 11-13: does the first-order expansion hold for the run's own attack?
    epsilon, direction = dat.first_order_attack(self.gan)
    kw = dict(epsilon=epsilon, direction=direction, value=s.dat_value, loss=self.gan.loss_fn,
              clip=self.is_image, batch_size=s.batch_size)
    result["first_order"] = {
        "real": dat.dat_first_order(self.d_fn, self.images, result["target_real"], real=True,
                                    labels=self.y, **kw),
        "fake": dat.dat_first_order(self.d_fn, self.fakes, result["target_fake"], real=False,
                                    labels=self.fake_labels, **kw)}
    return result

  def gradients(self, figures):
    s, images, y = self.s, self.images, self.y
    stats = gradients.input_gradient_stats(self.d_fn, images, y, bins=s.bins,
                                           batch_size=s.batch_size)
    if self.is_image:
      n = min(s.grid_num, len(images))
      figures["gradient_grid"] = gradients.gradient_grid(
          self.d_fn, images[:n], y[:n] if y is not None else None, batch_size=s.batch_size)
      figures["gradient_inputs"] = images_lib.grid(images[:n])
      figures["gradient_histogram"] = gradients.histogram_image(stats["histogram"]["counts"])
    return stats

  def modes(self, dataset, std, arrays):
    s = self.s
    errors.check(s.mode_samples >= 1, f"mode_samples must be >= 1; got {s.mode_samples}.")
    std = data_lib.MODE_STD[dataset] if std is None else float(std)
    centres = data_lib.mode_centres(dataset)
    samples, _ = make_fakes(self.gan, s.mode_samples, None, s.seed, s.batch_size)
    result = mode_coverage.mode_coverage(samples, centres, std, s.mode_num_std, s.mode_min_count)
    result.update(dataset=dataset, seed=s.seed)
    arrays["mode_samples"] = dict(samples=samples, centres=centres, std=np.float32(std))
    return result


def run_diagnostics(gan, images, labels, which, settings=Settings(), classifier=None,
                    dataset=None, mode_std=None):
  """Runs the chosen diagnostics (``which``, a subset of ``WHICH`` but ``generalization``).

  Args:
    gan: the restored ``GAN``; fakes come from its sampler (EMA G when enabled).
    images: ``[N, ...]`` real examples; ``labels``: their ``[N]`` classes or None.
    which: the diagnostics to run.
    settings: ``Settings``.
    classifier: ``(model, record)`` of an external classifier for ``class_pgd``
      (``class_pgd_classifier``: ``record``'s fields and the accuracies), or None.
    dataset: the run's dataset name (``modes``: its mixture).
    mode_std: the mixture's std (None: ``data.MODE_STD[dataset]``).

  Returns:
    ``(results, figures, arrays)``: the results by diagnostic; uint8 images by name
    (``gradient_grid``, ``gradient_inputs``, ``gradient_histogram``); arrays by name
    (``mode_samples``: ``samples``, ``centres``, ``std``).
  """
  s = settings
  fakes = (make_fakes(gan, len(images), labels, s.seed, s.batch_size)
           if any(w in which for w in NEEDS_FAKES) else (None, None))
  suite = _Suite(gan, images, labels, s, classifier, fakes)
  results, figures, arrays = {}, {}, {}
  for attack, key in (("fgsm", "accuracy"), ("pgd", "pgd_accuracy")):
    if key in which:
      results[key] = suite.accuracy(attack)
  if "class_pgd" in which:
    suite.class_pgd(results)
  if "dat" in which:
    results["dat"] = suite.dat()
  if "gradients" in which:
    results["gradients"] = suite.gradients(figures)
  if "confidence" in which:
    results["confidence"] = robustness.confidence_real_vs_adversarial(
        suite.d_fn, images, s.confidence_epsilon, suite.y, clip=suite.is_image,
        batch_size=s.batch_size)
  if "wdist" in which:
    results["wdist"] = dat.wasserstein_estimate(suite.d_fn, images, suite.fakes, suite.y,
                                                suite.fake_labels, s.batch_size)
  if "modes" in which:
    results["modes"] = suite.modes(dataset, mode_std, arrays)
  return results, figures, arrays


def class_models(gan, d_fn, classifier=None):
  """``[(name, class_logits_fn)]``: the AC head and the external classifier, where present."""
  out = []
  if has_ac_head(gan):
    out.append(("discriminator", d_fn))
  if classifier is not None:
    out.append(("classifier", _classifier_fn(classifier[0])))
  return out


def generalization(gan, splits, settings=Settings(), classifier=None):
  """Rob-GAN Fig. 1: local Lipschitz value and accuracy under PGD on train vs test reals.

  ``splits`` maps "train" / "test" to (images, labels). For each classifier (AC head, and
  ``classifier``, as in ``run_diagnostics``): per split the mean LLV ||grad_x CE||_2 and the
  accuracy under ``class_epsilons`` PGD (as class_pgd), and the gaps test - train (LLV) and
  train - test (accuracy).
  """
  s = settings
  d_fn = batching.discriminator_fn(gan, training=s.training_mode)
  kw = dict(epsilons=s.class_epsilons, steps=s.class_pgd_steps, batch_size=s.batch_size)
  results = {}
  for name, fn in class_models(gan, d_fn, classifier):
    per_split = {}
    for split, (images, labels) in splits.items():
      errors.check(labels is not None, f"generalization needs labels; split {split!r} has none.")
      per_split[split] = {
          "llv_mean": robustness.local_lipschitz(fn, images, labels, s.batch_size)["mean"],
          "accuracy": robustness.classifier_accuracy_under_pgd(fn, images, labels, clip=True,
                                                               **kw)}
    train, test = per_split["train"], per_split["test"]
    results[name] = {**per_split, "llv_gap": test["llv_mean"] - train["llv_mean"],
                     "accuracy_gap": {e: train["accuracy"][e] - test["accuracy"][e]
                                      for e in train["accuracy"]}}
  results.update(definition="llv = ||grad_x CE(f(x), y)||_2 at the data point (Rob-GAN Fig. 1), "
                 "mean over examples; accuracy under L-inf PGD on the cross entropy "
                 f"({s.class_pgd_steps} steps of eps / 5); gaps: llv test - train, "
                 "accuracy train - test", steps=s.class_pgd_steps)
  return results
