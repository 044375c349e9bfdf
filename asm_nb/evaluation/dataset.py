"""Datasets for ``asm_nb.evaluate``: items with an input (a prompt template and its variables), an
optional expected value, metadata and an optional workspace fixture.

A dataset comes from a list (of prompts or dicts), a pandas / polars DataFrame, a JSONL file or a
CSV file. Each item gets a stable ``hash`` (its rendered input, expected value, variables and the
content of its workspace fixture): results are stored under it, so a re-run skips what is done and
an edited item runs again.

>>> ds = Dataset.from_records([{"q": "2+2"}, {"q": "3+3"}], input="What is {q}?", expected=["4", "6"])
>>> [it.input for it in ds]
['What is 2+2?', 'What is 3+3?']
>>> ds[1].expected
'6'
"""

from __future__ import annotations

import functools

import csv
import hashlib
import json
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..core.errors import AsmError

__all__ = ["Item", "Dataset", "as_dataset", "canonical_hash", "tree_hash"]

_RESERVED = ("id", "input", "prompt", "expected", "metadata", "workspace")


def canonical_hash(obj: Any) -> str:
    """sha256 hex of the canonical JSON of ``obj`` (sorted keys; non-JSON values by ``repr``)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tree_hash(path: str | os.PathLike) -> str:
    """sha256 over the relative paths and contents of the files under ``path`` (``.git`` excluded
    except ``HEAD``), so a fixture edited on disk changes the items that use it."""
    root = Path(path)
    h = hashlib.sha256()
    if root.is_file():
        h.update(root.read_bytes())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0")
            try:
                h.update(p.read_bytes())
            except OSError:
                pass
            h.update(b"\0")
    head = root / ".git" / "HEAD"
    if head.is_file():
        h.update(head.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Item:
    """One dataset item: ``id``, the rendered ``input``, ``expected``, ``vars`` (the row),
    ``metadata`` and ``workspace`` (a fixture folder or git repo, or None)."""

    id: str
    input: Any
    expected: Any = None
    vars: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    workspace: str | None = None
    index: int = 0
    _fixture_hash: str | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def hash(self) -> str:
        """Stable identity of the item's content (input, expected, vars, fixture content)."""
        return canonical_hash({"input": self.input, "expected": self.expected, "vars": self.vars,
                               "workspace": self._fixture_hash})

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "input": self.input, "expected": self.expected, "vars": dict(self.vars),
                "metadata": dict(self.metadata), "workspace": self.workspace, "hash": self.hash}


def _render(template: Any, row: Mapping[str, Any], i: int) -> Any:
    if callable(template):
        return template(row)
    if isinstance(template, str) and "{" in template:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        missing = [f for f in fields if f.split(".")[0].split("[")[0] not in row]
        if missing:
            raise AsmError("validation_error", f"item {i}: input template refers to missing variable(s) {missing}; "
                                               f"the item has {sorted(row)}")
        return template.format_map(row)
    if isinstance(template, str):
        if template not in row:
            raise AsmError("validation_error", f"item {i}: input column {template!r} not in {sorted(row)}")
        return row[template]
    for key in ("input", "prompt"):
        if key in row:
            return row[key]
    raise AsmError("validation_error", f"item {i} has no input: give an 'input' (or 'prompt') field, "
                                       "or input='column' / input='... {column} ...'")


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


class Dataset(Sequence[Item]):
    """An ordered list of :class:`Item`. Build one with :meth:`from_records`, :meth:`from_frame`,
    :meth:`from_jsonl`, :meth:`from_csv`, or :func:`as_dataset` (any of those inputs).

    Options (every constructor): ``input`` (column name, ``"... {var} ..."`` template or
    ``callable(row)``; default the ``input``/``prompt`` field), ``expected`` (column name or a list
    aligned with the rows; default the ``expected`` field), ``workspace`` (column name, a folder
    for every item, or a ``"fixtures/{name}"`` template; default the ``workspace`` field),
    ``id`` (column name; default the ``id`` field, else the row number), ``base_dir`` (relative
    workspace paths resolve against it).
    """

    def __init__(self, items: Iterable[Item], *, name: str | None = None) -> None:
        self.items: list[Item] = list(items)
        self.name = name
        ids = [it.id for it in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
        if dup:
            raise AsmError("validation_error", f"dataset item ids must be unique; repeated: {dup[:5]}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:  # type: ignore[override]
        return self.items[i]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __repr__(self) -> str:
        ws = sum(1 for it in self.items if it.workspace)
        return f"Dataset({len(self.items)} items{f', {ws} with workspace fixtures' if ws else ''})"

    @property
    def hash(self) -> str:
        return canonical_hash([it.hash for it in self.items])

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def from_records(cls, rows: Iterable[Any], *, input: Any = None, expected: Any = None, workspace: Any = None,
                     id: str | None = None, metadata: Any = None, base_dir: str | os.PathLike | None = None,
                     name: str | None = None) -> "Dataset":
        """From prompts (str) or dicts. See the class docstring for the options."""
        records: list[dict[str, Any]] = []
        for i, r in enumerate(rows):
            if isinstance(r, str):
                records.append({"input": r})
            elif isinstance(r, Mapping):
                records.append({str(k): v for k, v in r.items()})
            else:
                raise AsmError("validation_error", f"dataset item {i} must be a prompt (str) or a dict, got {r!r}")
        if isinstance(expected, (list, tuple)) and len(expected) != len(records):
            raise AsmError("validation_error", f"expected has {len(expected)} values for {len(records)} items")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        fixture_hashes: dict[str, str] = {}
        items = []
        for i, row in enumerate(records):
            vars_ = {k: v for k, v in row.items() if k != "metadata"}
            text = _render(input, row, i)
            if isinstance(expected, (list, tuple)):
                exp = expected[i]
            elif isinstance(expected, str):
                if expected not in row:
                    raise AsmError("validation_error", f"item {i}: expected column {expected!r} not in {sorted(row)}")
                exp = row[expected]
            elif callable(expected):
                exp = expected(row)
            else:
                exp = row.get("expected")
            ws = _workspace_of(workspace, row, i, base)
            fh = None
            if ws is not None:
                if not os.path.isdir(ws):
                    raise AsmError("validation_error", f"item {i}: workspace fixture {ws!r} is not a folder")
                fh = fixture_hashes.get(ws) or fixture_hashes.setdefault(ws, tree_hash(ws))
            given_metadata = row.get("metadata")
            meta: dict[str, Any] = dict(given_metadata) if isinstance(given_metadata, Mapping) else {}
            if isinstance(metadata, (list, tuple)):
                meta = {**meta, **{k: row.get(k) for k in metadata}}
            item_id = row.get(id) if id else row.get("id")
            items.append(Item(id=str(i if _is_missing(item_id) else item_id), input=text,
                              expected=None if _is_missing(exp) else exp, vars=vars_, metadata=dict(meta),
                              workspace=ws, index=i, _fixture_hash=fh))
        return cls(items, name=name)

    @classmethod
    def from_frame(cls, frame: Any, **opts: Any) -> "Dataset":
        """From a pandas or polars DataFrame (one item per row)."""
        mod = type(frame).__module__
        if mod.startswith("pandas"):
            rows = frame.to_dict("records")
        elif mod.startswith("polars"):
            rows = frame.to_dicts()
        else:
            raise AsmError("validation_error", f"expected a pandas or polars DataFrame, got {type(frame).__name__}")
        return cls.from_records(rows, **opts)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, **opts: Any) -> "Dataset":
        """From a JSON-lines file (one object per line; blank lines skipped). Relative workspace
        paths resolve against the file's folder unless ``base_dir`` is given."""
        p = Path(path)
        rows = []
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise AsmError("not_found", f"dataset file not found: {p}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise AsmError("invalid_format", f"{p}, line {n}: not valid JSON ({exc})") from None
        opts.setdefault("base_dir", p.parent)
        opts.setdefault("name", p.stem)
        return cls.from_records(rows, **opts)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, **opts: Any) -> "Dataset":
        """From a CSV file with a header row (values are strings)."""
        p = Path(path)
        try:
            with p.open(newline="", encoding="utf-8") as f:
                rows = [dict(r) for r in csv.DictReader(f)]
        except FileNotFoundError:
            raise AsmError("not_found", f"dataset file not found: {p}") from None
        opts.setdefault("base_dir", p.parent)
        opts.setdefault("name", p.stem)
        return cls.from_records(rows, **opts)


def _workspace_of(spec: Any, row: Mapping[str, Any], i: int, base: Path) -> str | None:
    if spec is None:
        value = row.get("workspace")
    elif callable(spec):
        value = spec(row)
    elif isinstance(spec, os.PathLike):
        value = os.fspath(spec)
    elif isinstance(spec, str) and "{" in spec:
        value = _render(spec, row, i)
    elif isinstance(spec, str) and spec in row:
        value = row[spec]
    else:
        value = spec
    if _is_missing(value) or value == "":
        return None
    return str((base / str(value)).resolve())


def as_dataset(data: Any, **opts: Any) -> Dataset:
    """A :class:`Dataset` from a Dataset, a list, a DataFrame, or a ``.jsonl`` / ``.csv`` path."""
    if isinstance(data, Dataset):
        if opts:
            raise AsmError("validation_error", "dataset options apply when building a dataset, not to a Dataset")
        return data
    if isinstance(data, (str, os.PathLike)):
        p = str(data)
        if p.endswith((".jsonl", ".ndjson")):
            return Dataset.from_jsonl(p, **opts)
        if p.endswith(".csv"):
            return Dataset.from_csv(p, **opts)
        raise AsmError("validation_error", f"dataset file must be .jsonl or .csv, got {p!r}")
    mod = type(data).__module__
    if mod.startswith(("pandas", "polars")):
        return Dataset.from_frame(data, **opts)
    if isinstance(data, (list, tuple)):
        return Dataset.from_records(data, **opts)
    raise AsmError("validation_error", "dataset must be a list, a pandas/polars DataFrame, a .jsonl/.csv path or "
                                       f"a Dataset, got {type(data).__name__}")
