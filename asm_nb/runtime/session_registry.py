"""Session servers by session id: ``SessionRegistry`` and ``SessionRuntime`` (starts, registers
and stops servers; the supervisor of docs/runtime.md, streams, batches, the session server), and
the process-wide ``default_runtime()`` the notebook's live views list.

Split out of ``runtime/server.py``, which re-exports these names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import AsmError

if TYPE_CHECKING:
    from .server import SessionServer


class SessionRegistry:
    """session id → SessionServer; entries go away when a server closes."""

    def __init__(self) -> None:
        self._servers: dict[str, SessionServer] = {}

    def register(self, session_id: str, server: SessionServer) -> None:
        if session_id in self._servers:
            raise AsmError("already_exists", f"A session server is already registered for {session_id}")
        self._servers[session_id] = server

    def lookup(self, session_id: str) -> SessionServer | None:
        return self._servers.get(session_id)

    def unregister(self, session_id: str) -> None:
        self._servers.pop(session_id, None)

    def list(self) -> list[str]:
        return list(self._servers)

    def servers(self) -> list[SessionServer]:
        return list(self._servers.values())


class SessionRuntime:
    """Starts and stops session servers and registers them by session id.

    ``store`` / ``adapter`` / ``limiter`` are defaults for ``start_session``. Servers started
    here get the adapter's default ``ControlOperations`` (interrupt / pause / resume) unless
    ``control_ops`` is given.
    """

    def __init__(self, *, store: Any = None, adapter: Any = None, limiter: Any = None,
                 registry: SessionRegistry | None = None) -> None:
        self.store, self.adapter, self.limiter = store, adapter, limiter
        self.registry = registry or SessionRegistry()

    async def start_session(self, **server_opts: Any) -> SessionServer:
        """Start (and register) a server; ``max_concurrent_runs`` defaults to 1. The same session
        id twice → ``already_exists``."""
        sid = server_opts.get("session_id")
        if sid and self.registry.lookup(sid) is not None:
            raise AsmError("already_exists", f"A session server is already registered for {sid}")
        opts = {"store": self.store, "adapter": self.adapter, "limiter": self.limiter, **server_opts}
        opts.setdefault("max_concurrent_runs", 1)
        if isinstance(opts.get("adapter"), str):
            from .oneshot import resolve_adapter

            opts["adapter"] = resolve_adapter(opts["adapter"])
        if isinstance(opts.get("store"), str) or opts.get("store") is None:
            from ..stores import resolve_store

            opts["store"] = resolve_store(opts.get("store"))
        if opts.get("control_ops") is None and opts.get("adapter") is not None:
            from .control import for_adapter  # interrupt / pause / resume through ControlOperations

            opts["control_ops"] = for_adapter(opts["adapter"])
        from .server import SessionServer

        return await SessionServer.start(registry=self.registry, **opts)

    def whereis(self, session_id: str) -> SessionServer | None:
        return self.registry.lookup(session_id)

    async def stop_session(self, session_id: str, *, cancel_in_flight: bool = True) -> None:
        server = self.registry.lookup(session_id)
        if server is None:
            raise AsmError("session_not_found", f"No session server running for {session_id}")
        await server.aclose(cancel_in_flight)

    def servers(self) -> list[SessionServer]:
        return self.registry.servers()

    async def aclose(self) -> None:
        for server in self.registry.servers():
            await server.aclose()


_default_runtime: SessionRuntime | None = None


def default_runtime() -> SessionRuntime:
    """The process-wide runtime the notebook uses (live views list its servers)."""
    global _default_runtime
    if _default_runtime is None:
        _default_runtime = SessionRuntime()
    return _default_runtime
