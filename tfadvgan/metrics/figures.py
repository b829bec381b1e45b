"""Study figures as PNG files (matplotlib, an optional extra: `pip install tfadvgan[plots]`).

- `fid_curves_png`: FID against the training step, one line per variant: the mean over seeds with
  a ± std (population) band, as the papers' FID-over-iterations figures.
- `mode_samples_png`: 2-D samples over the mode centres of a mixture, one panel per run, with a
  circle of radius 3 std around each centre (the high-quality region of `mode_coverage`).
- `robustness_png`: accuracy under PGD against eps (Rob-GAN Table 1) and the train - test accuracy
  gap under the same attack (Fig. 1), one line per variant, mean ± std over seeds.

Files are written through `tfadvgan.storage.atomic_write`, so `gs://` works and no torn PNG is left.
"""
import io

import numpy as np

from tfadvgan import errors
from tfadvgan import storage


def _pyplot():
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise errors.ConfigError("Study figures need matplotlib: pip install 'tfadvgan[plots]' (or "
                             "pip install matplotlib).") from None
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path):
  plt = _pyplot()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  storage.atomic_write(path, buf.getvalue())


def curve_band(curves):
  """(steps, mean, std) over the seeds' `[[step, value], ...]` curves, on the steps all share."""
  errors.check(curves, "curve_band needs at least one curve.")
  tables = [dict((int(s), float(v)) for s, v in c) for c in curves]
  steps = sorted(set.intersection(*(set(t) for t in tables)))
  values = np.array([[t[s] for s in steps] for t in tables], np.float64)  # [seeds, steps]
  return np.array(steps), values.mean(axis=0), values.std(axis=0)


def fid_curves_png(path, curves_by_variant, seeds, metric="FID"):
  """Writes FID vs step: `curves_by_variant` maps a variant to its seeds' `[[step, fid], ...]`."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for variant, curves in curves_by_variant.items():
    steps, mean, std = curve_band(curves)
    line, = ax.plot(steps, mean, marker="o", markersize=3, label=f"{variant} (n={len(curves)})")
    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
  ax.set_xlabel("training step")
  ax.set_ylabel(metric)
  ax.set_title(f"{metric}: mean ± std over seeds {list(seeds)}")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  _save(fig, path)


def mode_samples_png(path, panels, columns):
  """Writes a grid of scatter panels, `columns` per row. `panels` is `[(title, npz path)]`, each
  npz as diagnose.py's `modes` writes it (`samples`, `centres`, `std`)."""
  plt = _pyplot()
  rows = -(-len(panels) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.4 * rows), squeeze=False)
  for ax in axes.ravel()[len(panels):]:
    ax.axis("off")
  for ax, (title, npz) in zip(axes.ravel(), panels):
    with np.load(io.BytesIO(storage.read(npz, binary=True))) as f:
      samples, centres, std = f["samples"], f["centres"], float(f["std"])
    ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4, color="tab:blue")
    for c in centres:
      ax.add_patch(plt.Circle(c, 3 * std, fill=False, color="tab:red", linewidth=0.6))
    ax.scatter(centres[:, 0], centres[:, 1], s=4, color="tab:red", marker="x")
    span = float(np.max(np.abs(centres))) * 1.5 + 3 * std
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
  _save(fig, path)


def epsilon_band(per_seed, prefix):
  """(eps, mean, std) over seeds of the values keyed `prefix + eps` in each seed's dict (study.py's
  `class_acc_pgd_0.02`, ...), on the eps every seed has; eps sorted as numbers."""
  tables = [{float(k[len(prefix):]): float(v) for k, v in s.items()
             if k.startswith(prefix) and v is not None} for s in per_seed]
  tables = [t for t in tables if t]
  if not tables:
    return np.zeros(0), np.zeros(0), np.zeros(0)
  eps = sorted(set.intersection(*(set(t) for t in tables)))
  values = np.array([[t[e] for e in eps] for t in tables], np.float64)  # [seeds, eps]
  return np.array(eps), values.mean(axis=0), values.std(axis=0)


def robustness_png(path, per_seed_by_variant, seeds, reference=None):
  """Writes two panels against eps: accuracy under PGD (`class_acc_pgd_*`) and the train - test
  accuracy gap (`acc_gap_pgd_*`), for each variant of `per_seed_by_variant` ({variant: [per-seed
  dicts]}); `reference` = (label, per-seed dicts with `ref_acc_pgd_*`) adds a dashed line."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  panels = (("class_acc_pgd_", "accuracy under PGD"), ("acc_gap_pgd_", "train - test accuracy"))
  for ax, (prefix, label) in zip(axes, panels):
    for variant, per_seed in per_seed_by_variant.items():
      eps, mean, std = epsilon_band(per_seed, prefix)
      if len(eps):
        line, = ax.plot(eps, mean, marker="o", markersize=3, label=f"{variant} (n={len(per_seed)})")
        ax.fill_between(eps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if reference is not None and prefix == "class_acc_pgd_":
      eps, mean, _ = epsilon_band(reference[1], "ref_acc_pgd_")
      if len(eps):
        ax.plot(eps, mean, linestyle="--", color="gray", label=reference[0])
    ax.set_xlabel("PGD eps ([-1, 1] scale)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(f"mean ± std over seeds {list(seeds)}")
  _save(fig, path)
