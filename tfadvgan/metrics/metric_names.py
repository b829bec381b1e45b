"""The names of the sample-quality metrics: the metric sets ``evaluate`` takes and the result names
they give for a classifier (see ``evaluation``'s docstring)."""
from tfadvgan.errors import check
from tfadvgan.metrics import classifiers as classifiers_lib
from tfadvgan.metrics import manifold

METRICS = ("fid", "is", "kid")  # the default set
# Every metric `evaluate` takes, in result order.
ALL_METRICS = METRICS + ("precision_recall", "density_coverage", "per_class_fid")
_PARTS = {"fid": ["fid"], "is": ["is_mean", "is_std"], "kid": ["kid", "kid_std"],
          "precision_recall": ["precision", "recall"], "density_coverage": ["density", "coverage"],
          "per_class_fid": ["fid_class_mean"]}


def metric_names(classifier_name, num_classes=0):
  """``{'fid': ..., 'is_mean': ..., 'kid': ..., 'precision': ..., 'fid_class_mean': ...,
  'fid_class_<c>': ...}`` result names (``fid_class_<c>`` for c < num_classes)."""
  n = classifier_name
  if n == classifiers_lib.INCEPTION_NAME:
    names = dict(fid="fid", is_mean="is_mean", is_std="is_std", kid="kid", kid_std="kid_std",
                 fid_class_mean="fid_class_mean")
    names.update({m: m for m in manifold.MANIFOLD_METRICS})
    names.update({f"fid_class_{c}": f"fid_class_{c}" for c in range(num_classes)})
    return names
  names = dict(fid=f"fid_{n}", is_mean=f"is_{n}_mean", is_std=f"is_{n}_std", kid=f"kid_{n}",
               kid_std=f"kid_{n}_std", fid_class_mean=f"fid_{n}_class_mean")
  names.update({m: f"{m}_{n}" for m in manifold.MANIFOLD_METRICS})
  names.update({f"fid_class_{c}": f"fid_{n}_class_{c}" for c in range(num_classes)})
  return names


def result_names(classifier_name, metrics=METRICS, num_classes=0):
  """The result keys ``evaluate`` returns for ``metrics``, in order (``per_class_fid`` needs the
  run's ``num_classes``: the mean, then one per class)."""
  metrics = check_metrics(metrics)
  check("per_class_fid" not in metrics or num_classes >= 1,
        "per_class_fid needs a class-conditional run (its classes label the samples).")
  names = metric_names(classifier_name, num_classes)
  parts = dict(_PARTS, per_class_fid=["fid_class_mean"]
               + [f"fid_class_{c}" for c in range(num_classes)])
  return [names[p] for m in metrics for p in parts[m]]


def needs_reference(metrics):
  """Whether ``metrics`` compare with real data (all but 'is')."""
  return any(m != "is" for m in check_metrics(metrics))


def check_metrics(metrics):
  """``metrics`` (a sequence or a comma-separated string) checked, in ``ALL_METRICS`` order."""
  if isinstance(metrics, str):
    metrics = [m.strip() for m in metrics.split(",") if m.strip()]
  metrics = tuple(metrics)
  check(metrics and all(m in ALL_METRICS for m in metrics),
        f"metrics must be a non-empty subset of {', '.join(ALL_METRICS)}; got {metrics!r}.")
  return tuple(m for m in ALL_METRICS if m in metrics)
