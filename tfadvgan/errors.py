"""User-facing errors.

Every bad input (unknown name, wrong shape, missing file, invalid hyperparameter, a conditional
method without labels, a corrupt checkpoint) raises ``ConfigError`` with one message that says what
to change. Scripts catch it at the top level and print the message without a TF stack trace.

Hyperparameters are checked at construction with ``check_float`` / ``check_int``, which name the gin
binding to change (``ASGAN.epsilon``), the value given and the allowed range, in one format:

    ASGAN.epsilon must be >= 0 (a finite number); got inf, which is not finite.
    DAT.adv_weight must be >= 0 (a finite number); got -1.

A constructor declares its knobs as a table of ``Knob`` (name, type, range) and checks them all in
one call, ``set_knobs`` (or ``check_knobs``), which gives the same messages.
"""

import math
import numbers
import typing


class ConfigError(ValueError):
  """A user-fixable problem with inputs, flags, gin bindings or files."""


def choose(kind, name, registry):
  """Returns ``registry[name]`` or raises a ConfigError listing the valid names."""
  if callable(name) and not isinstance(name, str):
    return name
  try:
    return registry[name]
  except (KeyError, TypeError):
    raise ConfigError(
        f"Unknown {kind} {name!r}. Choose one of: {', '.join(sorted(registry))}.") from None


def check(condition, message):
  """Raises ConfigError(message) unless condition holds."""
  if not condition:
    raise ConfigError(message)


def require_labels(has_labels, method, dataset=None):
  """The one "class-conditional but no labels" check (build_gan, the input pipeline, the step)."""
  where = f"dataset {dataset!r}" if dataset else "the dataset"
  check(has_labels, f"Method {method} is class-conditional but {where} has no labels; use a "
        "labelled dataset, or set build_gan.conditional = False.")


def _number_text(x):
  if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
    return str(int(x))
  return repr(x)


def range_text(low=None, high=None, low_inclusive=True, high_inclusive=True):
  """'>= 0', '> 0', '<= 1', 'in [0, 1)', or '' (any finite number)."""
  if low is not None and high is not None:
    return (f"in {'[' if low_inclusive else '('}{_number_text(low)}, {_number_text(high)}"
            f"{']' if high_inclusive else ')'}")
  if low is not None:
    return f"{'>=' if low_inclusive else '>'} {_number_text(low)}"
  if high is not None:
    return f"{'<=' if high_inclusive else '<'} {_number_text(high)}"
  return ""


def _is_number(value):
  try:
    import numpy as np  # pylint: disable=g-import-not-at-top
    if isinstance(value, np.ndarray) and value.ndim == 0:
      value = value.item()
  except ImportError:  # pragma: no cover
    pass
  return isinstance(value, numbers.Real) and not isinstance(value, bool), value


def _value_text(value):
  if isinstance(value, float) and math.isnan(value):
    return "nan, which is not a number"
  if isinstance(value, float) and math.isinf(value):
    return f"{value}, which is not finite"
  return _number_text(value) if isinstance(value, (int, float)) else repr(value)


def check_float(name, value, low=None, high=None, low_inclusive=True, high_inclusive=True,
                allow_none=False, hint=""):
  """Returns ``float(value)``, or raises ConfigError unless it is a finite number in range.

  Args:
    name: the gin binding a user changes, e.g. ``"ASGAN.epsilon"``.
    value: the value given.
    low, high: bounds (None: unbounded on that side).
    low_inclusive, high_inclusive: whether the bounds themselves are allowed.
    allow_none: None is a valid value (then returned as None).
    hint: optional extra text appended to the message.

  Returns:
    ``float(value)`` (or None when allowed and given).

  Raises:
    ConfigError: one line naming ``name``, the allowed range and the value, e.g.
      "ASGAN.epsilon must be >= 0 (a finite number); got inf, which is not finite."
  """
  if value is None and allow_none:
    return None
  rng = range_text(low, high, low_inclusive, high_inclusive)
  want = f"{rng} (a finite number)" if rng else "a finite number"
  if allow_none:
    want += " or None"
  extra = f" {hint}" if hint else ""
  ok, number = _is_number(value)
  bad = not ok
  if ok:
    number = float(number)
    bad = (not math.isfinite(number)
           or (low is not None and (number < low or (number == low and not low_inclusive)))
           or (high is not None and (number > high or (number == high and not high_inclusive))))
  if bad:
    raise ConfigError(f"{name} must be {want}; got {_value_text(number)}.{extra}")
  return number


def check_int(name, value, low=None, high=None, allow_none=False, hint=""):
  """Returns ``int(value)``, or raises ConfigError unless it is a whole number in [low, high].

  Whole-valued floats (``1e3``) are accepted; NaN, infinity, fractions and booleans are not.
  """
  if value is None and allow_none:
    return None
  rng = range_text(low, high)
  want = f"an integer {rng}" if rng else "an integer"
  if allow_none:
    want += " or None"
  extra = f" {hint}" if hint else ""
  ok, number = _is_number(value)
  if ok and not isinstance(number, numbers.Integral):
    number = float(number)
    ok = math.isfinite(number) and number.is_integer()
  if ok:
    number = int(number)
    ok = (low is None or number >= low) and (high is None or number <= high)
  if not ok:
    raise ConfigError(f"{name} must be {want}; got {_value_text(number)}.{extra}")
  return number


def bound_kwargs(fn):
  """The keyword values a gin-configurable ``fn`` would get now: its defaults updated by gin.

  Lets a constructor check the gin-bound knobs of a function it will only call inside the train
  step (a penalty, an attack), so that a bad value fails at construction, not at the first trace.
  """
  import inspect  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  params = inspect.signature(fn).parameters
  kwargs = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
  try:
    kwargs.update(gin.get_bindings(fn))
  except (ValueError, KeyError):  # not a registered configurable
    pass
  return kwargs


class Knob(typing.NamedTuple):
  """One hyperparameter of a constructor: its name, its type and the values allowed.

  `kind` is `float` or `int` (checked by `check_float` / `check_int` with `low`, `high`, the
  inclusive flags, `allow_none` and `hint`), `bool` (any value, converted with `bool`), `object`
  (taken as given) or a tuple of choices (the value must be one of them; the message lists them in
  the tuple's order).
  """
  name: str
  kind: typing.Any
  low: typing.Optional[float] = None
  high: typing.Optional[float] = None
  low_inclusive: bool = True
  high_inclusive: bool = True
  allow_none: bool = False
  hint: str = ""

  def check(self, owner, value):
    """The checked (and converted) value of `owner.name`, or a ConfigError naming it."""
    binding = f"{owner}.{self.name}"
    if self.kind is float:
      return check_float(binding, value, self.low, self.high, self.low_inclusive,
                         self.high_inclusive, self.allow_none, self.hint)
    if self.kind is int:
      return check_int(binding, value, self.low, self.high, self.allow_none, self.hint)
    if self.kind is bool:
      return bool(value)
    if isinstance(self.kind, tuple):
      check(value in self.kind,
            f"Unknown {binding} {value!r}. Choose one of: {', '.join(self.kind)}.")
    return value


def check_knobs(owner, knobs, values):
  """{name: checked value} for each `Knob` of `knobs`, in order, read from the mapping `values`
  (e.g. a constructor's `locals()`). `owner` is the gin name of the configurable (``"ASGAN"``)."""
  return {knob.name: knob.check(owner, values[knob.name]) for knob in knobs}


def set_knobs(obj, owner, knobs, values):
  """`check_knobs`, then each checked value set as the attribute of the same name on `obj`;
  returns the checked values."""
  checked = check_knobs(owner, knobs, values)
  for name, value in checked.items():
    setattr(obj, name, value)
  return checked
