"""Jupyter server extension of asm_nb: the REST endpoints behind JupyterLab's "Agent sessions"
sidebar (``extension/``).

Enabled by ``jupyter-config/jupyter_server_config.d/asm_nb.json`` (installed into
``etc/jupyter/jupyter_server_config.d/`` by the wheel), which names this module; Jupyter Server
then calls ``_jupyter_server_extension_points`` / ``_load_jupyter_server_extension``.

Endpoints (under the server's base URL, authenticated like every Jupyter endpoint — token or
cookie — through ``@tornado.web.authenticated``; JSON answers):

- ``GET asm-nb/sessions`` → ``{"store": str, "exists": bool, "sessions": [...]}``; each session
  ``{"session_id", "name", "agent_id", "status", "created_at", "updated_at", "run_count",
  "total_tokens", "cost_usd", "providers", "runs": [{"run_id", "status", "provider", "model",
  "started_at", "duration_s", "input_tokens", "output_tokens", "cost_usd", "error_code",
  "prompt"}]}``, newest session first, runs oldest first. Built from ``asm_nb.frames.sessions``
  and ``asm_nb.frames.runs`` (polars backend) plus each run's prompt (first 200 characters).
- ``GET asm-nb/runs/<run_id>`` → the run's ``application/vnd.asm.run+json`` payload
  (``asm_nb.rendering.mime.run_summary`` over the run and its stored events), which the
  extension's MIME renderer shows; 404 with ``{"code": "not_found"}`` for an unknown run.
- ``GET asm-nb/search?q=TEXT[&kind=output][&limit=20]`` → ``{"store", "exists", "hits": [...]}``,
  best first; each hit ``{"rank", "score", "kind", "session_id", "run_id", "sequence_number",
  "timestamp", "event_id", "parts": [[text, highlighted], ...]}`` (the snippet split at its
  matches, so the page styles them without HTML). A bad query → 400 with ``{"code":
  "validation_error", "message"}`` (docs/search.md).

The store read is the LocalStore at ``$ASM_HOME`` when set, else ``<server root dir>/.asm``
(``asm_nb.open_store(path)``), opened per request and closed after it, in a worker thread so
the server's event loop never waits on disk. A store folder that does not exist is reported
as empty rather than created.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["store_path", "list_sessions", "run_bundle", "search", "_jupyter_server_extension_points",
           "_load_jupyter_server_extension"]

#: URL prefix of the endpoints, below the server's base URL.
URL_PREFIX = "asm-nb"
_PROMPT_CHARS = 200


def store_path(root_dir: str | os.PathLike | None) -> Path:
    """The store folder the endpoints read: ``$ASM_HOME`` if set, else ``<root_dir>/.asm``."""
    home = os.environ.get("ASM_HOME")
    if home:
        return Path(home).expanduser()
    return Path(root_dir or os.getcwd()).expanduser() / ".asm"


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value


def _plain(row: Mapping[str, Any]) -> dict:
    return {k: _iso(v) for k, v in row.items()}


def _prompt(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("content", value.get("prompt", ""))
    if isinstance(value, list):
        value = " ".join(str(v.get("content", v)) if isinstance(v, Mapping) else str(v) for v in value)
    text = "" if value is None else str(value)
    return text if len(text) <= _PROMPT_CHARS else text[: _PROMPT_CHARS - 1] + "…"


def _rows_without_frames(store: Any) -> tuple[list[dict], list[dict]]:
    """The session and run rows ``list_sessions`` needs, straight from the store's objects (used
    when polars, which ``asm_nb.frames`` needs, is not installed)."""
    runs = []
    for r in store.list_runs(None):
        usage = r.token_usage or {}
        err = r.error if isinstance(r.error, Mapping) else {}
        dur = (r.ended_at - r.started_at).total_seconds() if r.ended_at and r.started_at else None
        runs.append({"run_id": r.id, "session_id": r.session_id, "status": r.status.value, "provider": r.provider,
                     "model": (r.provider_metadata or {}).get("model") if isinstance(r.provider_metadata, Mapping)
                     else None, "started_at": r.started_at, "duration_s": dur,
                     "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
                     "cost_usd": r.cost_usd, "error_code": err.get("code")})
    runs.sort(key=lambda r: str(_iso(r["started_at"])))
    sessions = []
    for s in store.list_sessions():
        mine = [r for r in runs if r["session_id"] == s.id]
        costs = [r["cost_usd"] for r in mine if r["cost_usd"] is not None]
        sessions.append({"session_id": s.id, "agent_id": s.agent_id, "status": s.status.value,
                         "created_at": s.created_at, "updated_at": s.updated_at, "run_count": len(mine),
                         "total_tokens": sum((r["input_tokens"] or 0) + (r["output_tokens"] or 0) for r in mine),
                         "cost_usd": sum(costs) if costs else None,
                         "providers": sorted({r["provider"] for r in mine if r["provider"]})})
    return sessions, runs


def list_sessions(path: str | os.PathLike) -> dict:
    """The ``GET asm-nb/sessions`` answer for the LocalStore at ``path``."""
    from .analytics import frames
    from .stores import open_store
    from .core.errors import AsmError

    from .stores.existing import is_local_store

    path = Path(path)
    if not path.is_dir():
        return {"store": str(path), "exists": False, "sessions": []}
    if not is_local_store(path):  # never turn an unrelated .asm folder into a store
        return {"store": str(path), "exists": False, "sessions": [],
                "error": f"{str(path)!r} is not an asm_nb store (no store.json in it)"}
    store = open_store(path)
    try:
        try:
            sessions = frames.sessions(store, backend="polars").to_dicts()
            runs = sorted(frames.runs(store, backend="polars").to_dicts(), key=lambda r: str(_iso(r["started_at"])))
        except AsmError as exc:
            if exc.code != "dependency_not_available":
                raise
            sessions, runs = _rows_without_frames(store)  # a base install without polars
        names: dict[str, Any] = {}
        prompts: dict[str, str] = {}
        for s in store.list_sessions():
            names[s.id] = (s.metadata or {}).get("name")
        for r in store.list_runs(None):
            prompts[r.id] = _prompt(r.input)
    finally:
        store.close()
    by_session: dict[str, list[dict]] = {}
    run_keys = ("run_id", "status", "provider", "model", "started_at", "duration_s", "input_tokens",
                "output_tokens", "cost_usd", "error_code")
    for r in runs:
        row = _plain({k: r.get(k) for k in run_keys})
        row["prompt"] = prompts.get(r["run_id"], "")
        by_session.setdefault(r["session_id"], []).append(row)
    session_keys = ("session_id", "agent_id", "status", "created_at", "updated_at", "run_count", "total_tokens",
                    "cost_usd", "providers")
    out = []
    for s in sorted(sessions, key=lambda s: str(_iso(s.get("created_at")) or ""), reverse=True):
        row = _plain({k: s.get(k) for k in session_keys})
        row["name"] = names.get(s["session_id"])
        row["runs"] = by_session.get(s["session_id"], [])
        out.append(row)
    return {"store": str(path), "exists": True, "sessions": out}


def run_bundle(path: str | os.PathLike, run_id: str) -> dict | None:
    """The ``application/vnd.asm.run+json`` payload of one stored run, or None if unknown."""
    from .stores import open_store
    from .core.errors import AsmError
    from .rendering.mime import run_summary

    path = Path(path)
    if not path.is_dir():
        return None
    store = open_store(path)
    try:
        try:
            run = store.get_run(run_id)
        except AsmError as exc:
            if exc.code in ("not_found", "run_not_found", "validation_error"):
                return None
            raise
        from .core.events import without_audit

        events = without_audit(store.get_events(run.session_id, run_id=run.id))
        session = store.get_session(run.session_id)
    finally:
        store.close()
    usage = dict(run.token_usage or {})
    model = (run.provider_metadata or {}).get("model") if isinstance(run.provider_metadata, Mapping) else None
    output = run.output
    if isinstance(output, Mapping):
        output = output.get("content", "")
    fields = {"run_id": run.id, "session_id": run.session_id, "status": run.status.value, "output": output,
              "token_usage": usage, "cost_usd": run.cost_usd, "error": run.error, "provider": run.provider,
              "model": model, "events": [e.to_dict() for e in events]}
    bundle = run_summary(fields)
    bundle["session_name"] = (session.metadata or {}).get("name")
    bundle["prompt"] = _prompt(run.input)
    return bundle


def search(path: str | os.PathLike, text: str, *, kind: Any = None, limit: int = 20) -> dict:
    """The ``GET asm-nb/search`` answer for the LocalStore at ``path`` (``AsmError`` for a bad
    query or argument)."""
    from .analytics.search import search_rows, split_marks
    from .stores import open_store
    from .stores.existing import is_local_store

    path = Path(path)
    if not path.is_dir() or not is_local_store(path):
        search_rows("memory://", text, kind=kind, limit=limit, mark=None)  # a bad query is an error all the same
        return {"store": str(path), "exists": False, "hits": []}
    store = open_store(path)
    try:
        rows = search_rows(store, text, kind=kind, limit=limit, mark=None)
    finally:
        store.close()
    hits = []
    for r in rows:
        snippet = r.pop("snippet")
        row = _plain(r)
        row["parts"] = [[t, h] for t, h in split_marks(snippet)]
        hits.append(row)
    return {"store": str(path), "exists": True, "hits": hits}


def _handlers() -> list:
    """The tornado handlers (imported lazily: ``import asm_nb.server_ext`` needs no server)."""
    import tornado.web
    from jupyter_server.base.handlers import APIHandler

    class _Base(APIHandler):
        def store_dir(self) -> Path:
            return store_path(self.settings.get("server_root_dir") or self.settings.get("root_dir"))

        def send_json(self, payload: Any, status: int = 200) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(payload, default=str))

    class SessionsHandler(_Base):
        @tornado.web.authenticated
        async def get(self) -> None:
            from tornado.ioloop import IOLoop

            self.send_json(await IOLoop.current().run_in_executor(None, list_sessions, self.store_dir()))

    class RunHandler(_Base):
        @tornado.web.authenticated
        async def get(self, run_id: str) -> None:
            from tornado.ioloop import IOLoop

            bundle = await IOLoop.current().run_in_executor(None, run_bundle, self.store_dir(), run_id)
            if bundle is None:
                self.send_json({"code": "not_found", "message": f"no run {run_id!r} in {self.store_dir()}"}, 404)
            else:
                self.send_json(bundle)

    class SearchHandler(_Base):
        @tornado.web.authenticated
        async def get(self) -> None:
            from tornado.ioloop import IOLoop

            from .core.errors import AsmError

            text = self.get_query_argument("q", "")
            kind = self.get_query_argument("kind", None) or None
            limit_text = self.get_query_argument("limit", "20")
            try:
                if not limit_text.isdigit():
                    raise AsmError("validation_error", f"limit must be a positive integer, got {limit_text!r}")
                limit = int(limit_text)
                result = await IOLoop.current().run_in_executor(
                    None, lambda: search(self.store_dir(), text, kind=kind, limit=limit))
            except AsmError as err:
                self.send_json({"code": err.code, "message": err.message}, 400)
                return
            self.send_json(result)

    return [(rf"{URL_PREFIX}/sessions/?", SessionsHandler),
            (rf"{URL_PREFIX}/runs/(run_[A-Za-z0-9_-]+)/?", RunHandler),
            (rf"{URL_PREFIX}/search/?", SearchHandler)]


def _jupyter_server_extension_points() -> list[dict]:
    """Tell Jupyter Server that this module is a server extension."""
    return [{"module": "asm_nb.server_ext"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the ``asm-nb/*`` handlers below the server's base URL."""
    from jupyter_server.utils import url_path_join

    web_app = server_app.web_app
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in _handlers()])
    server_app.log.info("asm_nb server extension: store at %s",
                        store_path(web_app.settings.get("server_root_dir") or getattr(server_app, "root_dir", None)))


# Older Jupyter Server / notebook-server name for the loader.
load_jupyter_server_extension = _load_jupyter_server_extension
