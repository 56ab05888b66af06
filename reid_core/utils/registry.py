"""A name -> object registry: the suite's replacement for if-chains over strings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects (builders, loaders) registered by name; unknown names list the valid ones.

    >>> DATASETS: Registry[Loader] = Registry("dataset")
    >>> @DATASETS.register("market1501")
    ... def load_market1501(root): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def unregister(self, name: str) -> T:
        """Remove ``name`` (e.g. a plug-in registered for one test) and return its object."""
        return self._items.pop(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        """The names in registration order (e.g. to list a family's members together)."""
        return iter(self._items)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._items[name]
