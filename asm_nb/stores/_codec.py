"""JSON bytes for LocalStore files: orjson when installed (several times faster), else ``json``.

Event lines follow docs/store-format.md: exactly ``Event.to_dict()`` (11 keys, that order), compact,
UTF-8 without ASCII escaping, one per line. ``event_line_parts`` serializes an event once,
*before* a sequence number exists, and returns the bytes on either side of the number so the
append path can splice it in under the lock.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..core.events import EVENT_SCHEMA_VERSION as _SCHEMA_VERSION
from ..core.events import Event, EventType
from ..core.serialization import format_datetime, to_jsonable

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is optional
    _orjson = None

__all__ = ["dumps", "loads", "event_line_parts", "event_line", "event_lines", "renumber", "row_lines", "HAVE_ORJSON"]

HAVE_ORJSON = _orjson is not None
_SEQ_MARK = b'"sequence_number":0,'


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=to_jsonable).encode("utf-8")


if _orjson is not None:
    _OPTS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS
    _UTC_Z = _orjson.OPT_UTC_Z
    _orjson_dumps = _orjson.dumps

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON; values JSON cannot hold go through ``to_jsonable``."""
        try:
            return _orjson_dumps(obj, default=to_jsonable, option=_OPTS)
        except TypeError:  # non-str dict keys, ints beyond 64 bits: the slow exact path
            return _json_dumps(to_jsonable(obj))

    loads = _orjson.loads
else:  # pragma: no cover
    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON; values JSON cannot hold go through ``to_jsonable``."""
        return _json_dumps(obj)

    def _json_loads(data: bytes | str) -> Any:
        return json.loads(data)

    loads = _json_loads


_UTC = timezone.utc


def _line_parts(e: Event) -> tuple[bytes, bytes]:
    ts = e.timestamp
    if ts.tzinfo is _UTC:  # the common case, same text as format_datetime at a third of the cost
        ts_text = ts.isoformat(timespec="microseconds")[:-6] + "Z"
    else:
        ts_text = format_datetime(ts)
    d = {
        "id": e.id, "type": e.type._value_, "timestamp": ts_text, "session_id": e.session_id,
        "run_id": e.run_id, "sequence_number": 0, "data": e.data, "metadata": e.metadata,
        "schema_version": e.schema_version, "provider": e.provider, "correlation_id": e.correlation_id,
    }
    line = dumps(d)
    # The first occurrence is the key itself: every value before it is a JSON string, in which
    # a quote is always escaped, so the marker cannot appear inside one.
    i = line.index(_SEQ_MARK) + len(_SEQ_MARK) - 2
    return line[:i], line[i + 1:] + b"\n"


# -- the streaming fast path -------------------------------------------------------------------
# Byte for byte the line ``_line_parts`` writes, assembled from pieces: the per-type and
# per-session parts (``"type"``, ``session_id``/``run_id``, ``schema_version``/``provider``/
# ``correlation_id``) are encoded once and cached, the timestamp is formatted by orjson (a fifth
# of the cost of ``isoformat``; it drops a zero fraction, which is put back), and ``id``, ``data`` and ``metadata`` are encoded by orjson with the same options
# but no ``default``: a value that needs ``to_jsonable`` raises and takes the general path.

_TYPE_PART = {t: b',"type":' + _orjson.dumps(t._value_) + b',"timestamp":' for t in EventType} \
    if _orjson is not None else {}
_session_parts: dict[tuple, bytes] = {}
_tail_parts: dict[tuple, bytes] = {}
_CACHE_MAX = 1024
_EMPTY = b"{}"


def _session_part(session_id: Any, run_id: Any) -> bytes:
    key = (session_id, run_id)
    part = _session_parts.get(key)
    if part is None:
        if type(session_id) is not str or (run_id is not None and type(run_id) is not str):
            raise TypeError("not a plain string")  # equal keys could encode differently
        part = b',"session_id":' + dumps(session_id) + b',"run_id":' + dumps(run_id) \
            + b',"sequence_number":'
        if len(_session_parts) >= _CACHE_MAX:
            _session_parts.clear()
        _session_parts[key] = part
    return part


def _tail_part(schema_version: Any, provider: Any, correlation_id: Any) -> bytes:
    if type(schema_version) is not int:  # True or 1.0 would find the entry of 1
        raise TypeError("not a plain int")
    key = (schema_version, provider, correlation_id)
    part = _tail_parts.get(key)
    if part is None:
        if (provider is not None and type(provider) is not str) \
                or (correlation_id is not None and type(correlation_id) is not str):
            raise TypeError("not a plain value")
        part = b',"schema_version":' + dumps(schema_version) + b',"provider":' \
            + dumps(provider) + b',"correlation_id":' + dumps(correlation_id) + b"}\n"
        if len(_tail_parts) >= _CACHE_MAX:
            _tail_parts.clear()
        _tail_parts[key] = part
    return part


_join = b"".join
_o_dumps = _orjson.dumps if _orjson is not None else None


#: an event's line with its number: id, type part, timestamp part, session/run part, number, data,
#: metadata, tail part (``event_line``, ``event_lines``, ``row_lines``)
_LINE = b'{"id":%b%b%b%b%d,"data":%b,"metadata":%b%b'


def _ts_bytes(ts: datetime) -> bytes:
    """A UTC datetime's JSON string as ``format_datetime`` writes it (orjson drops a zero
    fraction: the ".000000" is put back). Only called where orjson is there."""
    dumps = _o_dumps
    assert dumps is not None
    return dumps(ts, option=_UTC_Z) if ts.microsecond else dumps(ts)[:-7] + b'.000000Z"'


def event_line_parts(e: Event, data_json: bytes | None = None) -> tuple[bytes, bytes]:
    """``(before, after)``: the event's JSON line is ``before + str(seq) + after`` (``after`` ends
    with ``\\n``). Raises ``TypeError``/``ValueError`` when the event cannot be serialized.
    ``data_json``: ``e.data`` already encoded by the caller as ``dumps`` would (orjson, compact,
    no ``default`` needed), used as is."""
    ts = e.timestamp
    ev_id = e.id
    if _o_dumps is not None and type(ts) is datetime and ts.tzinfo is _UTC and type(ev_id) is str:
        o_dumps = _o_dumps
        meta = e.metadata
        try:
            ts_part = _ts_bytes(ts)
            return (
                _join((b'{"id":', o_dumps(ev_id), _TYPE_PART[e.type], ts_part,
                       _session_part(e.session_id, e.run_id))),
                _join((b',"data":', o_dumps(e.data, option=_OPTS) if data_json is None else data_json,
                       b',"metadata":',
                       _EMPTY if type(meta) is dict and not meta else o_dumps(meta, option=_OPTS),
                       _tail_part(e.schema_version, e.provider, e.correlation_id))),
            )
        except (TypeError, ValueError, KeyError, AttributeError):
            pass  # anything unusual: the general path decides (and raises what it raises)
    return _line_parts(e)


_ts_parts: dict[datetime, bytes] = {}


def event_line(e: Event, seq: int) -> bytes:
    """The whole line of ``e`` numbered ``seq`` (ends with ``\\n``): byte for byte
    ``before + str(seq) + after`` of :func:`event_line_parts`, built in one ``%`` format when the
    number is known before serializing (the bulk path, ``_localbulk.py``). The timestamp's bytes
    are remembered (4096 entries): consecutive events of a log often share one. Raises what
    ``event_line_parts`` raises."""
    ts = e.timestamp
    ev_id = e.id
    if _o_dumps is not None and type(ts) is datetime and ts.tzinfo is _UTC and type(ev_id) is str:
        o_dumps = _o_dumps
        meta = e.metadata
        try:
            ts_part = _ts_parts.get(ts)
            if ts_part is None:
                ts_part = _ts_bytes(ts)
                if len(_ts_parts) >= 4096:
                    _ts_parts.clear()
                _ts_parts[ts] = ts_part
            return _LINE % (
                o_dumps(ev_id), _TYPE_PART[e.type], ts_part, _session_part(e.session_id, e.run_id), seq,
                o_dumps(e.data, option=_OPTS), _EMPTY if type(meta) is dict and not meta else o_dumps(meta, option=_OPTS),
                _tail_part(e.schema_version, e.provider, e.correlation_id))
        except (TypeError, ValueError, KeyError, AttributeError):
            pass  # anything unusual: the general path decides (and raises what it raises)
    before, after = event_line_parts(e)
    return b"%b%d%b" % (before, seq, after)


def event_lines(events: list[Event], first: int) -> tuple[list[bytes], int]:
    """``([event_line(e, n) for e, n numbered from first + 1], total bytes)`` for one session's
    events in a row (the bulk path). Byte for byte the same lines; the parts a line shares with
    the one before (the same timestamp, session/run or tail *objects*: an import's events of one
    log line share them) are reused instead of looked up again (~15% of the cost of a line)."""
    out: list[bytes] = []
    add = out.append
    size = 0
    seq = first
    o_dumps = _o_dumps
    if o_dumps is None:  # pragma: no cover - orjson is a core dependency
        for e in events:
            seq += 1
            ln = event_line(e, seq)
            add(ln)
            size += len(ln)
        return out, size
    type_part = _TYPE_PART
    last_ts: Any = _EMPTY  # a sentinel no field is
    last_sid: Any = _EMPTY
    last_run: Any = _EMPTY
    last_tail: tuple = (_EMPTY, _EMPTY, _EMPTY)
    ts_part = sess_part = tail_part = b""
    for e in events:
        seq += 1
        ev_id = e.id
        try:
            if type(ev_id) is not str:
                raise TypeError("not a plain id")
            ts = e.timestamp
            if ts is not last_ts:
                if type(ts) is not datetime or ts.tzinfo is not _UTC:
                    raise TypeError("not a UTC datetime")
                ts_part = _ts_bytes(ts)
                last_ts = ts
            sid, rid = e.session_id, e.run_id
            if sid is not last_sid or rid is not last_run:
                sess_part = _session_part(sid, rid)
                last_sid, last_run = sid, rid
            tail = (e.schema_version, e.provider, e.correlation_id)
            if tail[0] is not last_tail[0] or tail[1] is not last_tail[1] or tail[2] is not last_tail[2]:
                tail_part = _tail_part(*tail)
                last_tail = tail
            meta = e.metadata
            ln = _LINE % (
                o_dumps(ev_id), type_part[e.type], ts_part, sess_part, seq, o_dumps(e.data, option=_OPTS),
                _EMPTY if type(meta) is dict and not meta else o_dumps(meta, option=_OPTS), tail_part)
        except (TypeError, ValueError, KeyError, AttributeError):
            last_ts = last_sid = last_run = _EMPTY
            last_tail = (_EMPTY, _EMPTY, _EMPTY)
            ln = event_line(e, seq)  # the general path decides (and raises what it raises)
        add(ln)
        size += len(ln)
    return out, size


_SEQ_KEY = b',"sequence_number":'


def renumber(blobs: list[bytes], first: int) -> tuple[list[bytes], int]:
    """Event lines (``blobs``: each a run of whole lines, as ``event_lines`` joined) numbered
    ``first + 1``, ``first + 2``, ... in order, whatever numbers they held; and their total size.
    The first ``,"sequence_number":`` of a line is the key itself: every value before it (id,
    type, timestamp, session and run id) is a JSON string, in which a quote is escaped."""
    out: list[bytes] = []
    add = out.append
    seq = first
    size = 0
    key, n_key = _SEQ_KEY, len(_SEQ_KEY)
    for blob in blobs:
        lines = blob.split(b"\n")
        if lines[-1]:
            raise ValueError("event lines must end with a newline")
        for ln in lines[:-1]:
            seq += 1
            i = ln.index(key) + n_key
            ln = b"%b%d%b\n" % (ln[:i], seq, ln[ln.index(b",", i):])
            add(ln)
            size += len(ln)
    return out, size


def row_lines(rows: list[tuple], first: int) -> tuple[list[bytes], int] | None:
    """``event_lines`` for events given as rows ``(id, type, timestamp, session_id, run_id, data,
    metadata, provider, correlation_id)`` with the current schema version (a history import
    builds them so, without ``Event`` objects): the same lines, byte for byte, as ``event_lines``
    of the events ``Event(*row)`` would be. None when a row needs the general path (a value orjson
    cannot encode as is, a time not in UTC, ...): the caller builds the events then."""
    o_dumps = _o_dumps
    if o_dumps is None:  # pragma: no cover - orjson is a core dependency
        return None
    out: list[bytes] = []
    add = out.append
    size = 0
    seq = first
    type_part = _TYPE_PART
    last_ts: Any = _EMPTY
    last_sid: Any = _EMPTY
    last_run: Any = _EMPTY
    last_tail: tuple = (_EMPTY, _EMPTY)
    ts_part = sess_part = tail_part = b""
    try:
        for ev_id, etype, ts, sid, rid, data, meta, provider, corr in rows:
            seq += 1
            if type(ev_id) is not str or not ev_id or type(sid) is not str or not sid or type(etype) is not EventType:
                return None  # (what ``check_event`` turns down, or takes the slow path for)
            if ts is not last_ts:
                if type(ts) is not datetime or ts.tzinfo is not _UTC:
                    return None
                ts_part = _ts_bytes(ts)
                last_ts = ts
            if sid is not last_sid or rid is not last_run:
                sess_part = _session_part(sid, rid)
                last_sid, last_run = sid, rid
            if provider is not last_tail[0] or corr is not last_tail[1]:
                tail_part = _tail_part(_SCHEMA_VERSION, provider, corr)
                last_tail = (provider, corr)
            ln = _LINE % (
                o_dumps(ev_id), type_part[etype], ts_part, sess_part, seq, o_dumps(data, option=_OPTS),
                _EMPTY if type(meta) is dict and not meta else o_dumps(meta, option=_OPTS), tail_part)
            add(ln)
            size += len(ln)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return out, size
