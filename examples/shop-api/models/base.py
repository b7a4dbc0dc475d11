"""Common base for the domain dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


class Model:
    """Mixin giving dataclasses a ``to_dict`` with hidden fields removed."""

    hidden_fields: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self)
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self.hidden_fields
        }

    def replace(self, **changes: Any) -> Any:
        assert dataclasses.is_dataclass(self)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
