"""The subprocess layer shared by the adapters and the workspace: ``managed.ManagedProcess``
(own process group, streamed lines, bounded stderr, escalating kill; its parts in ``launch``,
``groups`` and ``result``) and ``exec`` (run a
command to completion or stream it, as workspace tools and the shell adapter do).

May import ``core`` and ``config`` only; ``providers`` and ``workspace`` both build on it.
"""
