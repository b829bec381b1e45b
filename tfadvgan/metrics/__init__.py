"""Sample-quality metrics: FID, Inception Score and KID from classifier features/logits.

``sample_quality`` holds the metric functions and the reference-activation cache (math from tf-gan,
loaded by ``tfgan_eval.load_tfgan_eval``); ``classifiers`` the feature extractors (tf-gan
Inception from TF-Hub or a local path, Keras InceptionV3, or our domain classifier);
``domain_classifier`` the domain CNN, its (adversarial) training and its save format.
``evaluation`` evaluates a run (``evaluate``, ``make_eval_fn``) from its parts ``metric_names``,
``reference`` and ``results_file``; ``diagnostics`` (a package) holds the discriminator
diagnostics, ``diagnostics.suite`` the set scripts/diagnose.py runs.
"""
from tfadvgan.metrics.classifiers import CLASSIFIER_KINDS
from tfadvgan.metrics.classifiers import Classifier
from tfadvgan.metrics.classifiers import get_classifier
from tfadvgan.metrics.domain_classifier import build_domain_cnn
from tfadvgan.metrics.domain_classifier import evaluate_domain_classifier
from tfadvgan.metrics.domain_classifier import load_domain_classifier
from tfadvgan.metrics.domain_classifier import save_domain_classifier
from tfadvgan.metrics.domain_classifier import train_domain_classifier
from tfadvgan.metrics.sample_quality import ActivationStats
from tfadvgan.metrics.sample_quality import fid_from_activations
from tfadvgan.metrics.sample_quality import inception_score_from_logits
from tfadvgan.metrics.sample_quality import kid_from_activations
from tfadvgan.metrics.sample_quality import load_or_compute_reference
from tfadvgan.metrics.sample_quality import make_reference_key
from tfadvgan.metrics.sample_quality import reference_path
from tfadvgan.metrics.tfgan_eval import load_tfgan_eval
