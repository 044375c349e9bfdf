"""Workspace services: running commands (``exec``) and, in sibling modules, snapshots and diffs
of a working directory (spec part 3 §10). Submodules are imported on demand."""
