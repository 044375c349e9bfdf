"""The adapter an eval run goes through (``_EvalAdapter``): per run, the agent's adapter working
in the run's workspace copy, replaying or recording a cassette (the files the run changed
included); the workspace fixture helpers it uses; and the checks of an adapter-instance agent
(``instance_options``, ``check_instance_agent``).

Split out of ``evaluation/runner.py``, which re-exports these names.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import AsmError
from .agents import Agent


def _copy_fixture(src: str, dest: str) -> str:
    if os.path.exists(dest):
        shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _changed_files(fixture: str, ws: str) -> dict[str, Any]:
    """``{relative path: {"text"|"b64": content} | None (deleted)}`` of ``ws`` against ``fixture``
    (``.git`` excluded): what a recorded run did to its workspace."""
    def files(root: str) -> dict[str, str]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for n in filenames:
                p = os.path.join(dirpath, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    out[os.path.relpath(p, root)] = p
        return out
    before, after = files(fixture), files(ws)
    changes: dict[str, Any] = {}
    for rel, p in after.items():
        data = Path(p).read_bytes()
        if rel in before and Path(before[rel]).read_bytes() == data:
            continue
        try:
            changes[rel] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            changes[rel] = {"b64": base64.b64encode(data).decode("ascii")}
    for rel in before:
        if rel not in after:
            changes[rel] = None
    return changes


def _apply_files(ws: str, changes: Mapping[str, Any]) -> None:
    root = Path(ws).resolve()
    for rel, content in changes.items():
        target = (root / rel).resolve()
        if root not in target.parents:
            raise AsmError("invalid_format", f"cassette workspace file {rel!r} points outside the workspace")
        if content is None:
            if target.exists():
                target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if "text" in content:
            target.write_text(content["text"], encoding="utf-8")
        else:
            target.write_bytes(base64.b64decode(content["b64"]))


# ---------------------------------------------------------------------------------------------- adapter
class _EvalAdapter:
    """The session server's adapter for one agent: per run, the agent's adapter working in the
    run's workspace copy; replays / records cassettes (workspace changes included)."""

    def __init__(self, agent: Agent, *, cassettes: str | None, record: str,
                 meta: Mapping[str, Any] | None = None) -> None:
        from .. import api

        self.agent = agent
        self._meta = dict(meta or {})  # an executor worker's one run (its record has no eval metadata yet)
        self.cassettes = cassettes
        self.record = record
        self._probe = self._build(None) if isinstance(agent.provider, str) else agent.provider
        self.name = self._probe.name
        self.emits_input_messages = bool(getattr(self._probe, "emits_input_messages", False))
        self._inner: dict[str, Any] = {}
        self._cassette_cache: dict[str, Any] = {}
        self._api = api

    def _build(self, cwd: str | None) -> Any:
        from .. import api

        a = self.agent
        opts = dict(a.options)
        if cwd is not None:
            opts["cwd"] = cwd
        return api.resolve_adapter(a.provider, model=a.model, system=a.system, **opts)

    def __getattr__(self, item: str) -> Any:  # model, options... of the agent's adapter
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self._probe, item)

    async def capabilities(self) -> list:
        return await self._probe.capabilities()

    def validate_config(self, config: Mapping[str, Any]) -> None:
        return self._probe.validate_config(config)

    def cassette_path(self, meta: Mapping[str, Any]) -> str | None:
        if self.cassettes is None:
            return None
        return os.path.join(self.cassettes, _safe(self.agent.name),
                            f"{_safe(str(meta.get('item_id')))}-{str(meta.get('item_hash'))[:12]}-r{meta.get('repeat', 0)}.jsonl")

    async def execute(self, run: Any, session: Any, *, event_callback: Any = None, timeout: Any = None,
                      **opts: Any) -> Any:
        meta = (run.metadata or {}).get("eval") or self._meta
        ws = meta.get("workspace")
        path = self.cassette_path(meta)
        if path is not None and self.record != "all" and os.path.exists(path):
            from ..providers.replay import ReplayProvider, load_cassette

            cas = load_cassette(path)
            inner: Any = ReplayProvider(cassette=cas, name=self.name)
            self._inner[run.id] = inner
            try:
                result = await inner.execute(run, session, event_callback=event_callback, timeout=timeout)
            finally:
                self._inner.pop(run.id, None)
                files = cas.header.get("workspace_files")
                if ws and isinstance(files, Mapping):
                    await asyncio.to_thread(_apply_files, ws, files)
            return result
        if path is not None and self.record == "none":
            raise AsmError("not_found", f"no recorded cassette for this item at {path} (record='none')")
        if isinstance(self.agent.provider, str):
            inner = self._build(ws) if ws else self._probe
        else:  # an adapter instance: the agent's settings and the workspace go in per run
            inner = self.agent.provider
            opts = {**instance_options(self.agent, cwd=ws), **opts}
        if path is not None:
            from ..providers.replay import Recorder

            inner = Recorder(inner, path)
        self._inner[run.id] = inner
        try:
            return await inner.execute(run, session, event_callback=event_callback, timeout=timeout, **opts)
        finally:
            self._inner.pop(run.id, None)
            if path is not None and ws and meta.get("fixture") and os.path.exists(path):
                await asyncio.to_thread(_add_files_to_cassette, path, meta["fixture"], ws)
            if inner is not self._probe and ws and isinstance(self.agent.provider, str):
                try:
                    await (inner.adapter if hasattr(inner, "recorded") else inner).aclose()
                except Exception:
                    pass

    async def cancel(self, run_id: str) -> str:
        inner = self._inner.get(run_id)
        if inner is None:
            return "not_found"
        return await inner.cancel(run_id)

    async def aclose(self) -> None:
        try:
            await self._probe.aclose()
        except Exception:
            pass


def instance_options(agent: Agent, *, cwd: str | None = None) -> dict[str, Any]:
    """The execute options an adapter-instance agent gets per run: its ``options``, ``model``,
    ``system`` (as ``system_prompt`` for adapters that name it so) and the run's workspace as
    ``cwd``."""
    inst = agent.provider
    out = dict(agent.options)
    if agent.model is not None:
        out["model"] = agent.model
    if agent.system is not None:
        accepted = getattr(inst, "execute_overrides", None)
        key = "system_prompt" if isinstance(accepted, frozenset) and "system_prompt" in accepted else "system"
        out[key] = agent.system
    if cwd:
        out["cwd"] = cwd
    return out


def check_instance_agent(agent: Agent, *, needs_cwd: bool) -> None:
    """Refuse, before anything runs, an adapter-instance agent whose settings its adapter would
    silently drop at execute time (adapters that list what a run may override, in
    ``execute_overrides``), above all a workspace it would not work in."""
    inst = agent.provider
    accepted = getattr(inst, "execute_overrides", None)
    if isinstance(agent.provider, str) or not isinstance(accepted, frozenset):
        return  # a registered name (built per run), or an adapter taking any execute option
    wanted = set(instance_options(agent, cwd="x" if needs_cwd else None))
    dropped = sorted(wanted - accepted)
    if dropped:
        what = ("the item workspaces (cwd)" if dropped == ["cwd"] else
                f"option(s) {dropped}" + (" and the item workspaces" if "cwd" in dropped else ""))
        raise AsmError("validation_error",
                       f"agent {agent.name!r}: a {getattr(inst, 'name', type(inst).__name__)} adapter instance "
                       f"cannot take {what} per run (it takes {sorted(accepted) or 'none'}); name the "
                       f"provider instead: Agent({agent.name!r}, provider={getattr(inst, 'name', '...')!r}, "
                       "options={...}) builds one adapter per run in its workspace")


def _add_files_to_cassette(path: str, fixture: str, ws: str) -> None:
    from ..providers.replay import Cassette, load_cassette

    cas = load_cassette(path)
    header = {**cas.header, "workspace_files": _changed_files(fixture, ws)}
    Cassette(header=header, events=cas.events).write(path)


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:80] or "_"
