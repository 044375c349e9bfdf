"""new_id draws ids from a pooled ``os.urandom`` batch: unique across threads, pool refills and
forked children (which must not reuse the parent's pooled ids)."""

from __future__ import annotations

import os
import re
import sys
import threading

import pytest

from asm_nb.core import serialization
from asm_nb.core.serialization import new_id


def test_ids_stay_unique_and_well_formed_across_refills():
    n = serialization._ID_BATCH * 3 + 7
    ids = [new_id("evt_") for _ in range(n)]
    assert len(set(ids)) == n
    assert all(re.fullmatch(r"evt_[0-9a-f]{32}", i) for i in ids)


def test_ids_unique_across_threads():
    out: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def work(k: int) -> None:
        start.wait(timeout=10)
        out[k].extend(new_id("evt_") for _ in range(3000))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    everything = [i for ids in out for i in ids]
    assert len(everything) == 12000
    assert len(set(everything)) == 12000


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs os.fork")
def test_forked_child_does_not_reuse_the_parents_pool():
    new_id("evt_")  # make sure the parent holds a partly used pool
    assert serialization._id_pool
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the next ids, then leave without running pytest's cleanup
        try:
            os.close(r)
            os.write(w, " ".join(new_id("evt_") for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    child_ids = set(b"".join(chunks).decode().split())
    parent_ids = {new_id("evt_") for _ in range(50)}
    assert len(child_ids) == 50
    assert not child_ids & parent_ids
