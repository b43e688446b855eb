"""The project's user-facing error: one line, printed by the CLI without a traceback."""


class RkdscError(Exception):
    """A problem the user can fix (bad input, missing data or dependency); the message says how."""


class ConfigError(RkdscError, ValueError):
    """An unknown, conflicting or ill-typed configuration key; the message names the key."""


def one_line(exc: Exception) -> str:
    """An exception's message on one line (UHD's and YAML's span several; the CLI prints one)."""
    return " ".join(str(exc).split())


def check_choice(name: str, value, choices) -> None:
    """ValueError "`name` must be one of <choices>, got <value>" unless `value` is in `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
