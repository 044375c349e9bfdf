"""Data out, with no Jupyter: DataFrames (``frames``), plots (``plots``), the store's QueryAPI and
Maintenance (``query``), cost rows (``cost``), ``export`` and ``gc``. Usable from a script, the
CLI or a notebook; ``asm_nb.notebook`` and ``asm_nb.cli`` build on it.

May import everything below it (``api``, ``runtime``, adapters, services, ``core``) but never
``notebook``, ``cli`` or ``server_ext``. Heavy libraries (polars, pandas, plotly, pyarrow) load
inside the functions that need them.
"""
