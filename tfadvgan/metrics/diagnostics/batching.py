"""What every diagnostic shares: the discriminator callable, compiled functions cached on it, the
input checks, and fixed-size batches.

Inputs may be numpy arrays or tensors; work runs in fixed-size batches (``batch_size``; the last
batch is padded by repeating its last row and the padding is dropped, so every compiled function
sees one static shape and traces once). Results are numpy arrays (``run_batched``) or Python
floats (``mean``).
"""
import math
import weakref

import numpy as np
import tensorflow as tf

from tfadvgan import errors

_D_FNS = weakref.WeakKeyDictionary()  # discriminator model -> {(conditional, training): d_fn}


def discriminator_fn(gan, training=False):
  """``d_fn(x, labels=None) -> dict`` for ``gan.discriminator`` (labels fed only if conditional).

  The same callable comes back for the same discriminator and settings, so the compiled
  functions the diagnostics cache on it (``compiled``) are traced once per run, not at every
  call (a DAT run computes xi every ``train.diagnose_every_steps``).

  Args:
    gan: a ``tfadvgan.gans.GAN`` (or anything with ``discriminator`` and ``conditional``).
    training: the discriminator's mode (default inference: BN moving statistics, no dropout).

  Returns:
    The callable the diagnostics take.
  """
  conditional = bool(getattr(gan, "conditional", False))
  training = bool(training)
  try:
    per_model = _D_FNS.setdefault(gan.discriminator, {})
  except TypeError:  # not weak-referenceable: a fresh callable, nothing cached
    per_model = {}
  if (conditional, training) not in per_model:
    model = weakref.ref(gan.discriminator)  # the cached value must not keep its key alive

    def d_fn(x, labels=None):
      if conditional:
        errors.check(labels is not None,
                     "This run is class-conditional: the discriminator diagnostics need labels.")
      return model()(x, labels if conditional else None, training=training)

    per_model[(conditional, training)] = d_fn
  return per_model[(conditional, training)]


def compiled(d_fn, key, make):
  """``make()`` (a ``tf.function``), cached on ``d_fn`` under ``key`` so that repeated calls with
  the same discriminator callable reuse its traces. Callables that take no attributes (bound
  methods) get a fresh one each call."""
  cache = getattr(d_fn, "_tfadvgan_compiled", None)
  if cache is None:
    cache = {}
    try:
      d_fn._tfadvgan_compiled = cache  # pylint: disable=protected-access
    except AttributeError:
      return make()
  if key not in cache:
    cache[key] = make()
  return cache[key]


def logits_of(out):
  """The ``[B]`` logits of a discriminator output (dict or tensor)."""
  t = out["logits"] if isinstance(out, dict) else out
  t = tf.convert_to_tensor(t)
  if t.shape.rank == 2 and t.shape[-1] == 1:
    t = t[:, 0]
  return t


def class_logits_of(out):
  """The ``[B, C]`` class logits of a discriminator (its AC head) or classifier output."""
  if isinstance(out, dict):
    errors.check("class_logits" in out,
                 "The discriminator has no 'class_logits' output: classifier accuracy needs an "
                 "auxiliary-classifier head (build_discriminator.head = 'ac').")
    return out["class_logits"]
  return out


def as_array(x, dtype, what):
  """``x`` as a non-empty numpy batch of ``dtype`` (None stays None)."""
  if x is None:
    return None
  arr = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
  errors.check(arr.ndim >= 1 and arr.shape[0] >= 1, f"{what} must be a non-empty batch; got "
               f"shape {arr.shape}.")
  return arr.astype(dtype, copy=False)


def check_pair(images, labels):
  if labels is not None:
    errors.check(labels.shape == (images.shape[0],),
                 f"labels must have shape [{images.shape[0]}]; got {labels.shape}.")


def check_epsilons(epsilons):
  """A list of finite floats >= 0 (a single number is a list of one)."""
  eps = [float(e) for e in (epsilons if np.ndim(epsilons) else [epsilons])]
  errors.check(eps and all(e >= 0 and math.isfinite(e) for e in eps),
               f"epsilons must be finite numbers >= 0; got {epsilons!r}.")
  return eps


def check_images(images, what="images"):
  arr = as_array(images, np.float32, what)
  errors.check(arr.ndim >= 2, f"{what} must be [N, ...]; got shape {arr.shape}.")
  return arr


def probe(fn, x, y, extract=None):
  """Calls ``fn`` eagerly on one example, so that its ConfigErrors (missing labels or outputs)
  surface as such instead of as errors while tracing."""
  out = fn(tf.constant(x[:1]), None if y is None else tf.constant(y[:1]))
  (extract or logits_of)(out)


def checked_inputs(fn, images, labels, extract=None, labels_for=None):
  """``(x, y)``: ``images`` as float32 ``[N, ...]`` and ``labels`` as int32 ``[N]`` (or None),
  checked, with ``fn`` probed on one example (``extract`` picks the output it must have).
  ``labels_for``: the name of a diagnostic that needs the true labels (None: optional)."""
  x = check_images(images)
  if labels_for:
    errors.check(labels is not None, f"{labels_for} needs the true labels.")
  y = as_array(labels, np.int32, "labels")
  check_pair(x, y)
  probe(fn, x, y, extract)
  return x, y


def run_batched(fn, arrays, batch_size, extra=()):
  """Runs ``fn(*batch_arrays, *extra) -> dict of [b, ...] tensors`` over fixed-size batches.

  The last batch is padded to ``batch_size`` rows by repeating its last row (one static shape, one
  trace); padded rows are dropped. ``None`` entries of ``arrays`` are passed as ``None``.

  Returns:
    dict of numpy arrays with ``N`` rows.
  """
  errors.check(isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1,
               f"batch_size must be an int >= 1; got {batch_size!r}.")
  n = next(a for a in arrays if a is not None).shape[0]
  size = min(batch_size, n)
  outs = {}
  for start in range(0, n, size):
    stop = min(start + size, n)
    batch = []
    for a in arrays:
      if a is None:
        batch.append(None)
        continue
      part = a[start:stop]
      if stop - start < size:
        pad = np.repeat(part[-1:], size - (stop - start), axis=0)
        part = np.concatenate([part, pad], axis=0)
      batch.append(tf.convert_to_tensor(part))
    result = fn(*batch, *extra)
    for key, value in result.items():
      outs.setdefault(key, []).append(np.asarray(value)[:stop - start])
  return {k: np.concatenate(v, axis=0) for k, v in outs.items()}


def mean(values):
  """Float64 mean as a Python float (float32 means of 0/1 values are not exact fractions)."""
  return float(np.mean(np.asarray(values, np.float64)))


def logit_fn(d_fn, labels):
  """``x -> [B] logits`` of ``d_fn`` with fixed ``labels``."""
  return lambda x: logits_of(d_fn(x, labels))


def map_batches(d_fn, images, labels, batch_size, per_batch, key=None):
  """Checks inputs, then runs the compiled ``per_batch(xb, yb) -> dict`` over all batches
  (``key``: cache the compiled function on ``d_fn`` under it; ``per_batch`` must then depend on
  nothing but ``d_fn`` and the key)."""
  x, y = checked_inputs(d_fn, images, labels)
  fn = (tf.function(per_batch) if key is None
        else compiled(d_fn, key, lambda: tf.function(per_batch)))
  return run_batched(fn, [x, y], batch_size)


def logits(d_fn, images, labels=None, batch_size=256):
  """``[N]`` numpy logits of ``d_fn`` on ``images`` (batched, compiled)."""
  return map_batches(d_fn, images, labels, batch_size,
                     lambda xb, yb: {"t": logits_of(d_fn(xb, yb))}, key=("logits",))["t"]
