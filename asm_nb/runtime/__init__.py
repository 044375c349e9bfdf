"""The async runtime: the loop thread, SessionManager and (later) the session server."""
