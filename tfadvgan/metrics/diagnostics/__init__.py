"""Robustness and gradient diagnostics of a discriminator (AS-GAN, DAT and Rob-GAN figures/tables).

Every function takes a discriminator callable ``d_fn(x, labels=None) -> {"logits": [B], ...}`` (a
plain ``[B]`` tensor is accepted too) and works on any checkpoint; ``discriminator_fn(gan)`` makes
one from a ``GAN`` (inference mode by default: ``training`` is a parameter there). Inputs may be
numpy arrays or tensors, run in fixed-size batches (``batching``). Results are Python floats /
numpy arrays.

| function                           | module     | reproduces                                |
| ---------------------------------- | ---------- | ----------------------------------------- |
| ``d_accuracy``                     | robustness | AS-GAN Table 2 (D accuracy under FGSM)    |
| ``classifier_accuracy_under_pgd``  | robustness | Rob-GAN Table 1 (AC head under PGD)       |
| ``confidence_real_vs_adversarial`` | robustness | AS-GAN Fig. 10a (sigma(D), x / x_adv)     |
| ``local_lipschitz``                | robustness | Rob-GAN Fig. 1 right (||grad_x CE||_2)    |
| ``dat_attack_success``             | dat        | DAT Eq. 1 / Fig. 1 (xi_fake, xi_real)     |
| ``dat_first_order``                | dat        | DAT Eqs. 11-13 (does the expansion hold?) |
| ``wasserstein_estimate``           | dat        | DAT Figs. 4-7 (E D(x_r) - E D(x_f))       |
| ``input_gradient_stats``           | gradients  | AS-GAN Fig. 9 (histogram, L1, sparsity)   |
| ``gradient_grid``                  | gradients  | AS-GAN Fig. 2 (gradient maps)             |
| ``batch_diagnostics``              | batch      | one-batch scalars for TensorBoard         |

``suite`` runs a chosen set of them on a restored run (``scripts/diagnose.py``). Each module's
docstring holds its readings and decisions (also in docs/evaluation.md, "Evaluation: decisions").

**Mode.** Inference mode by default (``discriminator_fn(gan, training=False)``), which also makes
examples independent, so batching and padding do not change any number. ``training=True`` uses
batch statistics (padded rows then enter them) and, with Keras semantics, *updates* BN moving
statistics and spectral-norm kernels on every call: never use it on a model that is still training.
"""
from tfadvgan.metrics.diagnostics.batch import BATCH_KEYS
from tfadvgan.metrics.diagnostics.batch import BatchDiagnostics
from tfadvgan.metrics.diagnostics.batch import batch_diagnostics
from tfadvgan.metrics.diagnostics.batch import compiled_batch_diagnostics
from tfadvgan.metrics.diagnostics.batching import discriminator_fn
from tfadvgan.metrics.diagnostics.batching import logits
from tfadvgan.metrics.diagnostics.dat import DAT_VALUES
from tfadvgan.metrics.diagnostics.dat import dat_attack_success
from tfadvgan.metrics.diagnostics.dat import dat_first_order
from tfadvgan.metrics.diagnostics.dat import measures_attack_success
from tfadvgan.metrics.diagnostics.dat import wasserstein_estimate
from tfadvgan.metrics.diagnostics.gradients import gradient_grid
from tfadvgan.metrics.diagnostics.gradients import gradient_maps
from tfadvgan.metrics.diagnostics.gradients import histogram_image
from tfadvgan.metrics.diagnostics.gradients import input_gradient_stats
from tfadvgan.metrics.diagnostics.gradients import input_gradients
from tfadvgan.metrics.diagnostics.robustness import ATTACK_LOSSES
from tfadvgan.metrics.diagnostics.robustness import ATTACKS
from tfadvgan.metrics.diagnostics.robustness import DEFAULT_EPSILONS
from tfadvgan.metrics.diagnostics.robustness import ROBGAN_EPSILONS
from tfadvgan.metrics.diagnostics.robustness import classifier_accuracy_under_pgd
from tfadvgan.metrics.diagnostics.robustness import confidence_real_vs_adversarial
from tfadvgan.metrics.diagnostics.robustness import d_accuracy
from tfadvgan.metrics.diagnostics.robustness import local_lipschitz
from tfadvgan.metrics.diagnostics.robustness import under_attack
