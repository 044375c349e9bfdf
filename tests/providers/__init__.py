"""Provider tests (the CLI adapters' shared helpers live in _cli_support.py)."""
