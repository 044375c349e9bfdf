"""``Snapshot``: one captured state of a workspace folder (docs/workspace.md).

Pure data (standard library only); the backends that take snapshots live in ``git.py`` (git work
trees) and ``hashed.py`` (any folder, content hashes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from ..core.serialization import format_datetime, parse_datetime, utc_now

__all__ = ["Snapshot", "BULKY_METADATA_KEYS"]

#: Snapshot metadata keys that can hold one entry per file; left out of compact (run-record) forms.
BULKY_METADATA_KEYS = ("file_hashes", "content_refs", "file_sizes")


@dataclass(frozen=True)
class Snapshot:
    """A workspace state: ``backend`` ("git" | "hash"), absolute ``path``, ``ref`` (a git commit
    or the hash backend's content digest), ``label`` ("before", "after", ...), ``captured_at``
    (aware UTC) and backend ``metadata``."""

    backend: str
    path: str
    ref: str | None = None
    label: str | None = None
    captured_at: datetime = field(default_factory=utc_now)
    metadata: dict = field(default_factory=dict)

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        """The six fields as JSON-ready values. ``compact=True`` drops per-file metadata
        (hash maps of the hash backend), for records kept on a run."""
        md = dict(self.metadata)
        if compact:
            for k in BULKY_METADATA_KEYS:
                md.pop(k, None)
        return {"backend": self.backend, "path": self.path, "ref": self.ref, "label": self.label,
                "captured_at": format_datetime(self.captured_at), "metadata": md}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Snapshot":
        """Inverse of :meth:`to_dict` (``captured_at`` may be a datetime or ISO text)."""
        at = data.get("captured_at")
        if isinstance(at, str):
            at = parse_datetime(at)
        return cls(backend=str(data.get("backend")), path=str(data.get("path")), ref=data.get("ref"),
                   label=data.get("label"), captured_at=at or utc_now(),
                   metadata=dict(data.get("metadata") or {}))
