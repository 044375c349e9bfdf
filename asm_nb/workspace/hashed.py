"""``HashBackend``: snapshots and diffs of any folder by content hashes (docs/workspace.md).

For folders that are not git work trees. A snapshot walks every regular file (dot files
included; directory symlinks not followed; file symlinks hashed by target content; broken links
skipped), skipping top-level names in config ``excluded_workspace_roots`` + ``ignore["paths"]``
and files matching ``ignore["globs"]``, and records ``metadata["file_hashes"] = {posix path:
sha256}``. ``ref`` = sha256 of the sorted ``"<path>:<hash>"`` lines.

Python additions:
- a stat cache (``rel path → (size, mtime_ns, inode, sha, binary)``) so unchanged files are not
  re-read: in ``cache_dir/hash-<sha of path>.json`` when a cache folder is given (LocalStore's
  ``cache/``), else in process memory;
- files larger than ``max_file_bytes`` are fingerprinted by size and mtime instead of content
  (listed in ``metadata["large_files"]``);
- ``keep_content=True`` stores text files ≤ ``content_max_bytes`` as content-addressed blobs so a
  diff can give line counts and a unified patch (``metadata["content_refs"]``);
- unreadable files are skipped and listed in ``metadata["unreadable"]``.

Rollback is not supported (``invalid_operation``), as in the reference.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat as _stat
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from .. import config
from ..core.errors import AsmError
from .diff import Diff, FileChange, is_binary, unified_patch
from .exclusions import excluded, is_store_dir, pseudo_devices, relative_exclusions
from .snapshot import Snapshot

__all__ = ["HashBackend", "glob_to_regex", "DEFAULT_CONTENT_MAX_BYTES", "DEFAULT_MAX_FILE_BYTES"]

DEFAULT_CONTENT_MAX_BYTES = 1 << 20
DEFAULT_MAX_FILE_BYTES = 256 << 20
DEFAULT_CONTENT_TOTAL_MAX_BYTES = 64 << 20
_CHUNK = 1 << 20
_SNIFF = 8000
_LARGE_PREFIX = "stat:"

# process-wide state when no folder is given: stat caches per workspace, and kept contents
_MEM_CACHES: dict[str, dict[str, list]] = {}
_MEM_LOCK = threading.Lock()
_MEM_BLOBS: Any = None


def _memory_blobs() -> Any:
    global _MEM_BLOBS
    with _MEM_LOCK:
        if _MEM_BLOBS is None:
            from ..stores.artifacts import MemoryBlobStore

            _MEM_BLOBS = MemoryBlobStore()
        return _MEM_BLOBS


@lru_cache(maxsize=256)
def glob_to_regex(glob: str) -> re.Pattern:
    """Anchored regex for an ignore glob: ``**/`` → ``(.+/)?``, trailing ``**`` → ``.*``,
    ``*`` → ``[^/]*``, ``?`` → ``[^/]``, everything else literal."""
    out = []
    i, n = 0, len(glob)
    while i < n:
        if glob.startswith("**/", i):
            out.append("(.+/)?")
            i += 3
        elif glob.startswith("**", i) and i + 2 == n:
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


class _Ignore:
    def __init__(self, ignore: Mapping[str, Any] | None, excluded: Any = ()) -> None:
        ignore = ignore or {}
        self.excluded = list(excluded or ())  # store folders / files (relative posix paths)
        roots = list(config.get("excluded_workspace_roots") or [])
        roots += [str(p).strip("/") for p in (ignore.get("paths") or [])]
        self.roots = frozenset(roots)
        globs = [str(g) for g in (ignore.get("globs") or [])]
        self.full = [glob_to_regex(g) for g in globs]
        self.base = [glob_to_regex(g) for g in globs if "/" not in g]

    def skip_root(self, name: str) -> bool:
        return name in self.roots

    def skip_file(self, rel: str, name: str) -> bool:
        return any(r.match(rel) for r in self.full) or any(r.match(name) for r in self.base)


class HashBackend:
    """Content-hash snapshots of a plain folder; diffs by comparing the hash maps."""

    name = "hash"

    def __init__(self, *, cache_dir: str | os.PathLike | None = None, blobs: Any = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.blobs = blobs

    # ------------------------------------------------------------------------------ snapshot
    def take_snapshot(self, path: str | os.PathLike, label: str | None = None,
                      ignore: Mapping[str, Any] | None = None, *, keep_content: bool = False,
                      content_max_bytes: int = DEFAULT_CONTENT_MAX_BYTES,
                      content_total_max_bytes: int = DEFAULT_CONTENT_TOTAL_MAX_BYTES,
                      max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES, exclude_paths: Any = (),
                      **_ignored: Any) -> Snapshot:
        """Hash every file under ``path`` (see the module docstring). ``exclude_paths``: absolute
        paths left out (the active store); asm store folders and pseudo file systems are always
        left out (``exclusions``)."""
        if path is None or str(path) == "":
            raise AsmError("validation_error", "workspace path cannot be empty")
        root = Path(os.path.expanduser(str(path))).absolute()
        if not root.is_dir():
            raise AsmError("validation_error", f"workspace path is not a directory: {root}")
        excluded_rels = relative_exclusions(root, exclude_paths or ())
        rules = _Ignore(ignore, excluded_rels)
        cache, cache_file = self._load_cache(root)
        new_cache: dict[str, list] = {}
        blobs = (self.blobs or _memory_blobs()) if keep_content else None
        hashes: dict[str, str] = {}
        binary: list[str] = []
        content_refs: dict[str, str] = {}
        large: list[str] = []
        unreadable: list[str] = []
        kept_total = 0
        # files modified within the last 2 s may change again without a visible mtime change
        # ("racily clean", as git calls it): hash them, but do not trust them from the cache later
        racy_after = time.time_ns() - 2_000_000_000
        for rel, full, st in _walk(root, rules):
            entry = cache.get(rel)
            sig = [st.st_size, st.st_mtime_ns, st.st_ino]
            if max_file_bytes is not None and st.st_size > max_file_bytes:
                hashes[rel] = f"{_LARGE_PREFIX}{st.st_size}:{st.st_mtime_ns}"
                large.append(rel)
                continue
            want_content = blobs is not None and st.st_size <= content_max_bytes \
                and kept_total + st.st_size <= content_total_max_bytes
            if entry is not None and entry[:3] == sig and not (
                    want_content and not entry[4] and blobs is not None and not blobs.has(entry[3])):
                sha, is_bin = entry[3], entry[4]
            else:
                try:
                    sha, is_bin, data = _hash_file(full, keep=want_content)
                except OSError:
                    unreadable.append(rel)
                    continue
                if data is not None and not is_bin and blobs is not None:
                    blobs.put(data, sha)
            if st.st_mtime_ns < racy_after:
                new_cache[rel] = [*sig, sha, is_bin]
            hashes[rel] = sha
            if is_bin:
                binary.append(rel)
            elif want_content:
                content_refs[rel] = sha
                kept_total += st.st_size
        self._save_cache(root, cache_file, new_cache)
        digest = hashlib.sha256("\n".join(f"{p}:{hashes[p]}" for p in sorted(hashes)).encode("utf-8")).hexdigest()
        meta: dict[str, Any] = {"file_hashes": hashes, "file_count": len(hashes), "binary_paths": sorted(binary)}
        if excluded_rels:
            meta["excluded"] = excluded_rels
        if keep_content:
            meta["content_refs"] = content_refs
            meta["content_store"] = str(getattr(blobs, "root", None)) if getattr(blobs, "root", None) else None
        if large:
            meta["large_files"] = sorted(large)
        if unreadable:
            meta["unreadable"] = sorted(unreadable)
        return Snapshot(backend="hash", path=str(root), ref=digest, label=label, metadata=meta)

    # ------------------------------------------------------------------------------ diff
    def diff(self, before: Snapshot, after: Snapshot, *, capture_patch: bool = False,
             max_patch_bytes: int | None = None) -> Diff:
        """Changed paths between two hash snapshots; with kept contents also line counts and
        (``capture_patch``) a unified patch."""
        if before.backend != "hash" or after.backend != "hash":
            raise AsmError("validation_error", "Hash diff requires hash snapshots")
        a = before.metadata.get("file_hashes") or {}
        b = after.metadata.get("file_hashes") or {}
        changed = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
        a_bin = set(before.metadata.get("binary_paths") or ())
        b_bin = set(after.metadata.get("binary_paths") or ())
        a_refs = before.metadata.get("content_refs") or {}
        b_refs = after.metadata.get("content_refs") or {}
        have_content = "content_refs" in before.metadata and "content_refs" in after.metadata
        blobs_a = self._blobs_of(before)
        blobs_b = self._blobs_of(after)
        files: list[FileChange] = []
        patches: list[str] = []
        ins_total = dels_total = 0
        for p in changed:
            kind = "added" if p not in a else "deleted" if p not in b else "modified"
            binary = p in a_bin or p in b_bin
            ins = dels = None
            if binary:
                ins = dels = 0
                if capture_patch:
                    patches.append(f"diff --git a/{p} b/{p}\nBinary files {'a/' + p if p in a else '/dev/null'} "
                                   f"and {'b/' + p if p in b else '/dev/null'} differ\n")
            elif have_content:
                old = _content(blobs_a, a_refs, p) if p in a else None
                new = _content(blobs_b, b_refs, p) if p in b else None
                if (p not in a or old is not None) and (p not in b or new is not None):
                    text, ins, dels = unified_patch(p, old, new)
                    ins_total += ins
                    dels_total += dels
                    if capture_patch:
                        patches.append(text)
            files.append(FileChange(path=p, change=kind, insertions=ins, deletions=dels, binary=binary))
        meta: dict[str, Any] = {}
        patch = None
        if capture_patch and have_content:
            text = "".join(patches)
            n = len(text.encode("utf-8", "surrogateescape"))
            limit = config.get("max_patch_bytes") if max_patch_bytes is None else max_patch_bytes
            if limit is not None and n > limit:
                meta = {"patch_truncated": True, "patch_bytes": n}
            else:
                patch = text
                meta = {"patch_truncated": False, "patch_bytes": n}
        return Diff(backend="hash", from_ref=before.ref, to_ref=after.ref, files_changed=len(changed),
                    insertions=ins_total, deletions=dels_total, changed_paths=changed, patch=patch,
                    metadata=meta, files=files)

    def rollback(self, snapshot: Snapshot) -> dict[str, Any]:
        """Not supported for plain folders (``invalid_operation``)."""
        raise AsmError("invalid_operation", "Rollback is not supported for hash backend in MVP")

    # ------------------------------------------------------------------------------ helpers
    def _blobs_of(self, snap: Snapshot) -> Any:
        where = snap.metadata.get("content_store")
        if where:
            from ..stores.artifacts import BlobStore

            return BlobStore(where)
        return self.blobs or _memory_blobs()

    def _load_cache(self, root: Path) -> tuple[dict[str, list], Path | None]:
        if self.cache_dir is None:
            with _MEM_LOCK:
                return dict(_MEM_CACHES.get(str(root), {})), None
        from ..stores._codec import loads

        f = self.cache_dir / f"hash-{hashlib.sha256(str(root).encode('utf-8')).hexdigest()[:32]}.json"
        try:
            data = loads(f.read_bytes())
            return (data if isinstance(data, dict) else {}), f
        except (OSError, ValueError):
            return {}, f

    def _save_cache(self, root: Path, cache_file: Path | None, cache: dict[str, list]) -> None:
        if cache_file is None:
            with _MEM_LOCK:
                _MEM_CACHES[str(root)] = cache
            return
        from ..stores._codec import dumps
        from ..stores.artifacts import _atomic_write

        try:
            _atomic_write(cache_file, dumps(cache))
        except OSError:  # the cache is disposable
            pass


def _content(blobs: Any, refs: Mapping[str, str], p: str) -> bytes | None:
    sha = refs.get(p)
    if sha is None:
        return None
    try:
        return blobs.get(sha)
    except AsmError:
        return None


def _hash_file(path: str, *, keep: bool) -> tuple[str, bool, bytes | None]:
    h = hashlib.sha256()
    chunks: list[bytes] | None = [] if keep else None
    first = True
    binary = False
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            if first:
                binary = is_binary(chunk[:_SNIFF])
                first = False
            h.update(chunk)
            if chunks is not None:
                chunks.append(chunk)
    return h.hexdigest(), binary, (b"".join(chunks) if chunks is not None else None)


def _walk(root: Path, rules: _Ignore) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative posix path, absolute path, stat) of every regular file (or link to one)."""
    pseudo = pseudo_devices()
    try:
        if os.stat(root).st_dev in pseudo:
            return  # /proc, /sys…: nothing to snapshot (reads there can block or never end)
    except OSError:
        return
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        d, prefix = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                name = e.name
                if not prefix and rules.skip_root(name):
                    continue
                rel = prefix + name
                try:
                    if e.is_dir(follow_symlinks=False):
                        if excluded(rel, rules.excluded) or is_store_dir(e.path) \
                                or (pseudo and e.stat(follow_symlinks=False).st_dev in pseudo):
                            continue  # an asm store, or a pseudo file system mounted here
                        stack.append((e.path, rel + "/"))
                        continue
                    if e.is_symlink():
                        try:
                            st = os.stat(e.path)  # target; broken link → skipped
                        except OSError:
                            continue
                        if not _stat.S_ISREG(st.st_mode):
                            continue
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                    else:
                        continue
                except OSError:
                    continue
                if rules.full and rules.skip_file(rel, name):
                    continue
                if rules.excluded and excluded(rel, rules.excluded):
                    continue
                yield rel, e.path, st
