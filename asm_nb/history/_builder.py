"""``SessionBuilder``: one log file's records -> an asm session, runs (one per user turn) and
normalized events, in memory until the driver (``_driver.py``) writes them. Every event goes
through the redactor with the store's settings; every billed model call is priced from the
active pricing table (``_Pricer``). See ``_base.py`` for the incremental state it keeps.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.run import Run, RunStatus
from ..core.serialization import new_id
from ..core.session import Session, SessionStatus
from ..core.usage import CACHE_CREATION_1H_TOKENS, TOKEN_KEYS, TokenUsage
from ._base import _ABSENT, _TYPES, STATE_KEY, STATE_VERSION, ImportReport, _ended, _iso, _keys, _now, parse_ts

if TYPE_CHECKING:
    from ._base import FileJob

__all__ = ["SessionBuilder"]

_K_IN, _K_OUT, _K_CR, _K_CC = TOKEN_KEYS


class _Pricer:
    """Per-message USD from the active pricing table, one lookup per (provider, model)."""

    def __init__(self) -> None:
        from ..cost.calculator import tokens_cost
        from ..cost.pricing import active_pricing

        self._tokens_cost = tokens_cost
        self.info = active_pricing()
        self._cache: dict[tuple[str, str | None], tuple[str | None, Any, tuple | None]] = {}

    def cost(self, provider: str, model: str | None, usage: Mapping[str, int],
             hour: int = 0) -> tuple[float | None, str | None]:
        """``(USD, price key)`` of one model call's ``usage`` (the four counters); ``hour``: the
        part of its cache writes written for an hour, at most ``cache_creation_tokens`` (priced at
        the table's ``cache_creation_1h`` rate where it has one)."""
        key = (provider, model)
        hit = self._cache.get(key)
        if hit is None:
            from ..cost.calculator import lookup_price

            found = lookup_price(provider, model, self.info.table)
            rates = found[1] if found[0] is not None else None
            # the four per-token prices in the order ``tokens_cost`` applies them (cache tokens
            # at the input price when the table has none)
            flat = None if rates is None else (
                rates.input, rates.output, rates.cache_read if rates.cache_read is not None else rates.input,
                rates.cache_creation if rates.cache_creation is not None else rates.input, rates.cache_creation_1h)
            hit = (found[0], rates, flat)
            self._cache[key] = hit
        key_found, rates, flat = hit
        if key_found is None or rates is None:
            return None, None
        i, o, cr, cc = usage[_K_IN], usage[_K_OUT], usage[_K_CR], usage[_K_CC]
        if flat is not None and type(i) is int and type(o) is int and type(cr) is int and type(cc) is int \
                and i >= 0 and o >= 0 and cr >= 0 and cc >= 0:
            # ``tokens_cost`` for clean counts: the same products summed in the same order
            if hour and flat[4] is not None:
                return i * flat[0] + o * flat[1] + cr * flat[2] + (cc - hour) * flat[3] + hour * flat[4], key_found
            return i * flat[0] + o * flat[1] + cr * flat[2] + cc * flat[3], key_found
        if hour:
            usage = {**usage, CACHE_CREATION_1H_TOKENS: hour}
        return self._tokens_cost(usage, rates), key_found


def _new_run_state(run_id: str, started: datetime | None, prompt: str | None, line: int) -> dict:
    iso = _iso(started)
    return {"id": run_id, "started": iso, "ended": iso, "prompt": prompt, "output": None,
            "status": "completed", "usage": {k: 0 for k in TOKEN_KEYS}, "reasoning": None, "model_usage": {},
            "cost": 0.0, "unpriced": [], "reported": 0, "computed": 0, "price_keys": [], "tool_calls": 0,
            "messages": 0, "usage_records": 0, "line": line, "error": None}


class SessionBuilder:
    """Turns one log file's records into a session, runs and events (in memory until the
    driver writes them). Sources call :meth:`start_run`, :meth:`message`, :meth:`tool_started`,
    :meth:`tool_finished`, :meth:`usage`, :meth:`error` and set :attr:`meta` keys; the builder
    keeps the incremental state."""

    def __init__(self, job: "FileJob", state: Mapping | None, seen: dict[str, Any], pricer: _Pricer,
                 report: ImportReport, since: datetime | None) -> None:
        from ..persistence.pipeline import _make_event
        from ..persistence.redaction import RedactionConfig, emit_redacted, redact_payload

        self.job = job
        self.source = job.source
        self.provider = job.provider
        self.sid = job.session_id
        self.seen = seen  # usage key -> counters counted for it anywhere in this store (shared across files)
        self.pricer = pricer
        self.report = report
        self.since = since
        st = dict(state or {})
        self.meta: dict[str, Any] = dict(st.get("meta") or {})
        self.run: dict | None = st.get("run")
        self.tools: dict[str, str] = dict(st.get("tools") or {})
        self.extra: dict[str, Any] = dict(st.get("extra") or {})  # the source's own counters
        self.keys: dict[str, Any] = _keys(st.get("keys"))
        self.first_ts: datetime | None = parse_ts(st.get("first_ts"))
        self.last_ts: datetime | None = parse_ts(st.get("last_ts"))
        self.line_no: int = int(st.get("line_no") or 0)
        self.run_count: int = int(st.get("run_count") or 0)
        self.touched: dict[str, dict] = {}  # run states to save after this pass
        self.new_runs = 0
        self.events: list[Any] = []  # Event objects, or rows (``_driver._row``) for the encoded path
        # every event goes through the redactor with the store's settings, as a live run's do
        self._redaction = RedactionConfig.from_config()
        self._redact = redact_payload if self._redaction.enabled else None
        self._emit_redacted = emit_redacted
        # the pipeline's constructor for checked fields (sets the slots; Event(...) when it cannot)
        self._make_event: Callable[..., Any] = _make_event
        self._clean: set[tuple] = set()  # fixed payloads the redactor leaves unchanged
        self._md = {"imported_from": self.source}
        self.ts: datetime | None = None  # timestamp of the line being handled
        self.skipping = False  # the current line is before ``since``
        self.scratch: dict[str, Any] = {}  # a source's per-pass memo (in memory only, never saved)

    # -- state ------------------------------------------------------------------------------------
    def to_state(self, offset: int, size: int, mtime_ns: int) -> dict:
        return {"version": STATE_VERSION, "source": self.source, "path": str(self.job.path), "offset": offset,
                "size": size, "mtime_ns": mtime_ns,
                "meta": {k: (self._redacted(v) if k in ("title", "summary") else v) for k, v in self.meta.items()},
                "run": {**{k: (self._redacted(v) if k == "error" else v)
                           for k, v in self.run.items() if not k.startswith("_")},
                        "ended": _iso(_ended(self.run))} if self.run else None, "tools": self.tools,
                "extra": self.extra, "keys": self.keys, "first_ts": _iso(self.first_ts), "last_ts": _iso(self.last_ts),
                "line_no": self.line_no, "run_count": self.run_count}

    # -- the line being read ------------------------------------------------------------------------
    def at(self, ts: datetime | None) -> bool:
        """Set the current line's time; False when the line is before ``since`` (skip it)."""
        if ts is not None:
            self.ts = ts
            if self.since is not None and ts < self.since:
                self.skipping = True
                return False
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        self.skipping = False
        return True

    def warn(self, reason: str) -> None:
        self.report.warn(f"{self.job.path}:{self.line_no}: {reason}")

    # -- events -------------------------------------------------------------------------------------
    def _emit(self, etype: str, data: dict, run_id: str | None, const: bool = False) -> dict:
        """Append one event; returns its (redacted) data. ``const``: ``data`` is one of a few
        fixed payloads (``{"status": "completed"}``): it is redacted once per builder."""
        et = _TYPES[etype]
        md = self._md
        if self._redact is not None:
            key = (et, *data.items()) if const else None
            if key is None or key not in self._clean:
                data, md, n, fields = self._redact(et, data, md, self._redaction)
                if n:
                    self._emit_redacted(self.sid, run_id, et, n, fields)
                elif key is not None:
                    self._clean.add(key)  # the redactor leaves it as it is
        self.events.append(self._make_event(new_id("evt_"), et, self.ts or _now(), self.sid, run_id, data, dict(md),
                                            self.provider, None))
        return data

    def _current(self) -> dict:
        """The open run; records before the first prompt get a run without one."""
        if self.run is None:
            self.start_run(None)
        assert self.run is not None
        self.touched[self.run["id"]] = self.run
        return self.run

    def start_run(self, prompt: str | None) -> None:
        """A new user turn: the previous run ends, a run starts with ``prompt``."""
        self.end_run()
        self.run_count += 1
        self.new_runs += 1
        rid = f"run_{self.job.id_prefix}{self.job.key}_{self.run_count:05d}"
        self.run = _new_run_state(rid, self.ts, prompt, self.line_no)
        self.touched[rid] = self.run
        self._emit("run_started", {"imported_from": self.source}, rid, const=True)
        if prompt is not None:
            sent = self._emit("message_sent", {"role": "user", "content": prompt}, rid)
            self.run["prompt"] = sent.get("content")  # the redacted text: runs keep what events keep

    def end_run(self) -> None:
        """Close the open run (its ``run_completed`` / ``run_cancelled`` event is written)."""
        run = self.run
        if run is None:
            return
        self.touched[run["id"]] = run
        etype = {"completed": "run_completed", "cancelled": "run_cancelled", "failed": "run_failed"}[run["status"]]
        data: dict[str, Any] = {"status": run["status"]}
        if run.get("error"):
            data["error_message"] = run["error"]
        ts, self.ts = self.ts, _ended(run) or self.ts
        self._emit(etype, data, run["id"], const=len(data) == 1)
        self.ts = ts
        run["closed"] = True
        self.run = None

    def _touch(self, run: dict) -> None:
        if self.ts is not None:
            run["_ended_dt"] = self.ts  # formatted when saved (to_state, runs)

    def message(self, role: str, content: str, **extra: Any) -> None:
        run = self._current()
        self._touch(run)
        data = self._emit("message_sent" if role == "user" else "message_received",
                          {"role": role, "content": content, **extra}, run["id"])
        if role == "assistant":
            run["output"] = data.get("content")
            run["messages"] += 1

    def tool_started(self, call_id: str | None, name: str, tool_input: Any) -> None:
        run = self._current()
        self._touch(run)
        run["tool_calls"] += 1
        if call_id:
            self.tools[call_id] = name
            if len(self.tools) > 500:  # results that never came: forget the oldest
                for k in list(self.tools)[:250]:
                    del self.tools[k]
        self._emit("tool_call_started", {"tool_call_id": call_id, "tool_name": name, "tool_input": tool_input},
                   run["id"])

    def tool_finished(self, call_id: str | None, output: Any, *, failed: bool = False) -> None:
        run = self._current()
        self._touch(run)
        name = self.tools.pop(call_id, None) if call_id else None
        data: dict[str, Any] = {"tool_call_id": call_id, "tool_name": name, "tool_output": output}
        if failed:
            data["error_message"] = output if isinstance(output, str) else "tool failed"
        self._emit("tool_call_failed" if failed else "tool_call_completed", data, run["id"])

    def error(self, message: str) -> None:
        run = self._current()
        self._touch(run)
        self._emit("error_occurred", {"error_message": message}, run["id"])

    def set_status(self, status: str, error: str | None = None) -> None:
        run = self._current()
        self._touch(run)
        run["status"] = status
        if error:
            run["error"] = error

    def usage(self, model: str | None, usage: TokenUsage, *, key: str | None = None,
              reported_cost: Any = None, hour: int = 0, **extra: Any) -> bool:
        """One model call's tokens. ``key`` (e.g. message id + request id) dedupes across the
        whole store; returns False when it was already counted. ``hour``: the part of its cache
        writes written for an hour (priced at its own rate)."""
        i, o, cr, cc = usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens
        if key is not None:
            now = [i, o, cr, cc]  # (TOKEN_KEYS order)
            prev = self.seen.get(key, _ABSENT)
            if prev is _ABSENT:
                self.seen[key] = self.keys[key] = now
            else:
                # a repeat: a streamed message's later snapshot (Claude Code writes output_tokens
                # as they grow, the last line has the final count) or a resumed session's copy.
                # Only the growth is counted, so the total is the final figure, counted once.
                if prev is None:
                    return False
                delta = [max(a - b, 0) for a, b in zip(now, prev)]
                if not any(delta):
                    return False
                self.seen[key] = self.keys[key] = [max(a, b) for a, b in zip(now, prev)]
                usage = TokenUsage(*delta)
                i, o, cr, cc = delta
                reported_cost = None
                extra["update"] = True
        run = self._current()
        self._touch(run)
        u = {_K_IN: i, _K_OUT: o, _K_CR: cr, _K_CC: cc}
        hour = min(hour, cc) if hour > 0 else 0  # (a repeat counts only the growth of its writes)
        cost, price_key = self.pricer.cost(self.provider, model, u, hour)
        source = "computed"
        if isinstance(reported_cost, (int, float)) and not isinstance(reported_cost, bool) and reported_cost > 0:
            cost, source = float(reported_cost), "reported"
            run["reported"] += 1
        elif cost is not None:
            run["computed"] += 1
        reasoning = usage.reasoning_output_tokens
        ru = run["usage"]
        ru[_K_IN] += i
        ru[_K_OUT] += o
        ru[_K_CR] += cr
        ru[_K_CC] += cc
        if reasoning is not None:
            run["reasoning"] = (run["reasoning"] or 0) + reasoning
        if hour:
            run["hour"] = run.get("hour", 0) + hour
        mname = model or "unknown"
        mu = run["model_usage"].get(mname)
        if mu is None:
            mu = run["model_usage"][mname] = {_K_IN: 0, _K_OUT: 0, _K_CR: 0, _K_CC: 0}
        mu[_K_IN] += i
        mu[_K_OUT] += o
        mu[_K_CR] += cr
        mu[_K_CC] += cc
        if cost is None:
            if mname not in run["unpriced"]:
                run["unpriced"].append(mname)
        else:
            run["cost"] += cost
            if price_key and price_key not in run["price_keys"]:
                run["price_keys"].append(price_key)
        run["usage_records"] += 1
        self.report.usage_records += 1
        data = {**u, "model": model, "cost_usd": cost, "cost_source": source if cost is not None else None, **extra}
        if reasoning is not None:
            data["reasoning_output_tokens"] = reasoning
        if hour:
            data[CACHE_CREATION_1H_TOKENS] = hour
        self._emit("token_usage_updated", data, run["id"])
        return True

    # -- output ---------------------------------------------------------------------------------
    @property
    def project(self) -> str | None:
        """The project a session belongs to: its working directory when the log says, else the
        source's own project name (Claude Code's folder slug)."""
        cwd = self.meta.get("cwd")
        return cwd if isinstance(cwd, str) and cwd else self.job.project

    def session(self, existing: Session | None, state: dict) -> Session:
        meta = dict(existing.metadata) if existing is not None else {}
        meta.update({k: (self._redacted(v) if k in ("title", "summary") else v) for k, v in self.meta.items()
                     if v is not None})
        meta.update({"provider": self.provider, "imported_from": self.source, "source_path": str(self.job.path),
                     "project": self.project or meta.get("project")})
        created = (existing.created_at if existing else None) or self.first_ts or _now()
        updated = self.last_ts or created
        ctx = dict(existing.context) if existing is not None else {}
        ctx[STATE_KEY] = state
        return Session(id=self.sid, agent_id=self.job.agent_id, status=SessionStatus.COMPLETED,
                       parent_session_id=self.job.parent_session_id or (existing.parent_session_id if existing else None),
                       metadata=meta, context=ctx, tags=["imported", self.source], created_at=created,
                       updated_at=updated)

    def _redacted(self, value: Any) -> Any:
        """Runs and session titles must not keep what the events' redaction hides."""
        if value is None or self._redact is None:
            return value
        from ..persistence.redaction import redact_map

        return redact_map({"v": value}, None)["v"]

    def runs(self) -> list[Run]:
        out = []
        pv = self.pricer.info
        for st in self.touched.values():
            started = parse_ts(st["started"]) or self.first_ts or _now()
            ended = _ended(st) or started
            open_ = not st.get("closed")
            status = RunStatus(st["status"])
            usage = dict(st["usage"])
            if st["reasoning"] is not None:
                usage["reasoning_output_tokens"] = st["reasoning"]
            if st.get("hour"):
                usage[CACHE_CREATION_1H_TOKENS] = st["hour"]
            models = sorted(st["model_usage"], key=lambda m: -sum(st["model_usage"][m].values()))
            model = models[0] if models else self.meta.get("model")
            if st["usage_records"] == 0:
                cost = None if self.extra.get("no_usage_in_log") else 0.0
                cost_source = None if cost is None else "no_tokens"
            elif st["unpriced"]:
                cost, cost_source = None, None
            else:
                cost = st["cost"]
                cost_source = "reported" if st["reported"] and not st["computed"] else \
                    ("computed" if not st["reported"] else "mixed")
            md = {"imported_from": self.source, "project": self.project, "history_line": st["line"],
                  "cost_source": cost_source, "price_key": "+".join(st["price_keys"]) or None,
                  "pricing_version": pv.version, "pricing_source": pv.source,
                  "unpriced_models": st["unpriced"] or None, "usage_records": st["usage_records"],
                  "tool_calls": st["tool_calls"], "open": open_ or None}
            if cost_source == "computed":
                md["computed_cost_usd"] = cost
            elif cost_source == "reported":
                md["reported_cost_usd"] = cost
            pm = {"model": model, "model_usage": st["model_usage"] or None, "model_source": "history_log"}
            output = {"content": st["output"]} if st["output"] is not None else None
            error = {"code": "history_error", "message": st["error"]} if st.get("error") else None
            out.append(Run(id=st["id"], session_id=self.sid, status=status, input=st["prompt"],
                           output=output, error=self._redacted(error), metadata={k: v for k, v in md.items() if v is not None},
                           turn_count=max(st["messages"], 1 if st["usage_records"] else 0), token_usage=usage,
                           cost_usd=cost, started_at=started, ended_at=ended, provider=self.provider,
                           provider_metadata={k: v for k, v in pm.items() if v is not None}))
        return out
