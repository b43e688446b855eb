"""One registry shape for every kind of named thing (channels, datasets, baselines, ...): a
read-only mapping name → factory, in registration order, whose lookup error lists the valid names.

    CHANNELS = Registry("channel", {"awgn": NoFading, ...})
    CHANNELS.get("rayleigh")      # the factory; an unknown name raises UnknownNameError
    CHANNELS.names()              # ("awgn", ...): what CLI choices and GRC enums are built from
    CHANNELS.register("x", X)     # or @CHANNELS.register("x") above a class or function

Imports nothing but the standard library, so any module may hold a registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from rkdsc_core.errors import RkdscError

T = TypeVar("T")


class UnknownNameError(RkdscError, ValueError, KeyError):
    """A name no registry entry has; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """name → factory of one `kind` of thing. Iterating gives the names in registration order."""

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, factory in (entries or {}).items():
            self.register(name, factory)

    def register(self, name: str, factory: T | None = None):
        """Add `factory` under `name` (a second entry of one name raises); without `factory`,
        a decorator that registers what it decorates."""
        if factory is None:

            def deco(obj: T) -> T:
                self.register(name, obj)
                return obj

            return deco
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = factory
        return factory

    def get(self, name: str) -> T:  # type: ignore[override]  # raises instead of a default
        """The factory registered as `name`; UnknownNameError naming the valid ones if none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def unknown(self, name: object) -> UnknownNameError:
        """The error for a name that is not registered (for callers that add context)."""
        return UnknownNameError(
            f"unknown {self.kind} {name!r} (choose from {', '.join(self._entries)})"
        )

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def create(self, name: str, *args, **kwargs):
        """`get(name)(*args, **kwargs)`."""
        factory: Callable = self.get(name)  # type: ignore[assignment]
        return factory(*args, **kwargs)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
