"""User-facing errors.

Every bad input (unknown name, wrong shape, missing file, invalid hyperparameter, a conditional
method without labels, a corrupt checkpoint) raises ``ConfigError`` with one message that says what
to change. Scripts catch it at the top level and print the message without a TF stack trace.
"""


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
