"""Ray subclasses defined on first use, under their module's own name.

Importing a launcher module must not import Ray (a run in this process never does), so classes that
subclass Ray's are built by a function when first asked for. Ray pickles them by reference to ship them
to the workers, so each is published as a module-level name of the module that asked, with that
module's `__module__` and a plain `__qualname__`, where unpickling finds it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any


def lazy_classes(module_name: str, names: Iterable[str], build: Callable[[], Iterable[type]]) -> Callable[[str], Any]:
    """A PEP 562 module `__getattr__` for `module_name`: the first request for one of `names` runs `build()`
    (which returns the classes) and publishes every class it returns in that module."""
    wanted = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in wanted:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module = sys.modules[module_name]
        for cls in build():
            cls.__module__ = module_name
            cls.__qualname__ = cls.__name__
            setattr(module, cls.__name__, cls)
        return getattr(module, name)

    return __getattr__
