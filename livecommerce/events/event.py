"""The base of every domain event: a frozen dataclass that knows its wire name."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

_TYPES: dict[str, type[Event]] = {}


@dataclasses.dataclass(frozen=True)
class Event:
    """A fact that happened. Subclasses are frozen dataclasses of JSON-friendly fields.

    Each subclass names itself with ``name`` (unique, stable: it travels between processes).
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name:
            raise TypeError(f"{cls.__name__} needs a class attribute 'name'")
        if cls.name in _TYPES and _TYPES[cls.name].__qualname__ != cls.__qualname__:
            raise TypeError(f"two events are called {cls.name!r}")
        _TYPES[cls.name] = cls

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.name, "data": dataclasses.asdict(self)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def event_type(name: str) -> type[Event] | None:
    """The event class registered under ``name`` (None for a name this process does not know)."""
    return _TYPES.get(name)
