"""Index checkpoints of LocalStore's document tables (``db/<table>.index.json``), so a new process
does not parse every line of ``db/runs.jsonl`` / ``db/sessions.jsonl`` to know where each document
is (docs/store-format.md, index checkpoints).

A checkpoint is one JSON object: ``{"asm": "doc-index", "version": 1, "ino", "offset", "lines",
"ids", "off", "len", "meta"}``: the table's in-memory index (``DocLog.index``: per live id the
offset and length of its current line, by offset, and its ``meta`` fields, one list per field) as
it was after the first
``offset`` bytes of the file with inode ``ino`` (``lines`` lines). A reader that finds a valid
one installs it and parses only the lines after ``offset``. It is a cache: a checkpoint naming
another inode, reaching past the file, not ending on a line boundary or whose newest entry does not
name the line it points to is ignored (the table is parsed as before), and deleting it is safe.

A writer (holding ``db.lock``) writes one (temp file + ``os.replace``) when the lines not covered
by a checkpoint reach ``max(2,048, live documents / 4)``, and after a compaction: the cost is
amortized, a fraction of a microsecond per saved document.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import TYPE_CHECKING

from ._atomic import write_atomic
from ._codec import dumps, loads

if TYPE_CHECKING:  # pragma: no cover
    from ._doclog import DocLog

log = logging.getLogger("asm_nb.stores.local")

CHECKPOINT_VERSION = 1
CHECKPOINT_MIN_LINES = 2048


def path_of(dl: "DocLog"):
    return dl.path.with_name(dl.path.stem + ".index.json")


def due(dl: "DocLog") -> bool:
    """Whether enough lines were indexed since the last checkpoint to write a new one."""
    return dl.lines - dl.cp_lines >= max(CHECKPOINT_MIN_LINES, len(dl.index) // 4)


def load(dl: "DocLog", st: os.stat_result) -> bool:
    """Install a valid checkpoint of the file ``st`` describes into the empty ``dl``."""
    enabled = gc.isenabled()
    gc.disable()  # ~10 objects per entry, none cyclic: collection passes over them cost more than building them
    try:
        return _load(dl, st)
    finally:
        if enabled:
            gc.enable()


def _load(dl: "DocLog", st: os.stat_result) -> bool:
    try:
        raw = path_of(dl).read_bytes()
    except (FileNotFoundError, OSError):
        return False
    try:
        cp = loads(raw)
        if not isinstance(cp, dict) or cp.get("asm") != "doc-index" or cp.get("version") != CHECKPOINT_VERSION \
                or cp.get("ino") != st.st_ino:
            return False
        offset, lines = cp["offset"], cp["lines"]
        ids, offs, lens, cols = cp["ids"], cp["off"], cp["len"], cp["meta"]
        if not (isinstance(offset, int) and 0 < offset <= st.st_size and isinstance(lines, int)
                and len(ids) == len(offs) == len(lens) and cols and all(len(c) == len(ids) for c in cols)):
            return False
        with open(dl.path, "rb") as f:
            fd = f.fileno()
            if os.fstat(fd).st_ino != st.st_ino or os.pread(fd, 1, offset - 1) != b"\n":
                return False
            if ids:  # entries are by offset: the last one names the newest line it points to
                o, n = offs[-1], lens[-1]
                line = os.pread(fd, n + 1, o)
                if max(offs) != o or o + n + 1 > offset or not line.endswith(b"\n") \
                        or loads(line[:-1]).get("id") != ids[-1]:
                    return False
        index = dict(zip(ids, zip(offs, lens, zip(*cols))))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return False
    groups: dict = {}
    get = groups.get
    for i, g in zip(ids, cols[0]):
        ids_of = get(g)
        if ids_of is None:
            groups[g] = {i}
        else:
            ids_of.add(i)
    dl.index, dl.groups = index, groups
    dl.lines = dl.cp_lines = lines
    dl.offset = offset
    dl.ino = st.st_ino
    dl.cp_loaded += 1
    return True


def write(dl: "DocLog") -> None:
    """Write the checkpoint of ``dl`` as it is now (``db.lock`` held). Never raises."""
    if dl.ino is None or not dl.offset:
        return
    items = sorted(dl.index.items(), key=lambda kv: kv[1][0])  # by offset
    width = max((len(v[2]) for _k, v in items), default=1)
    if any(len(v[2]) != width for _k, v in items):  # pragma: no cover - meta() has one shape per table
        return
    doc = {"asm": "doc-index", "version": CHECKPOINT_VERSION, "ino": dl.ino, "offset": dl.offset,
           "lines": dl.lines, "ids": [k for k, _v in items], "off": [v[0] for _k, v in items],
           "len": [v[1] for _k, v in items], "meta": [[v[2][j] for _k, v in items] for j in range(width)]}
    path = path_of(dl)
    try:
        write_atomic(path, dumps(doc))
        dl.cp_lines = dl.lines
        dl.cp_written += 1
    except Exception as exc:  # a cache: the table is complete without it
        log.warning("LocalStore: could not write %s (%r)", path, exc)
