"""Store tests (the contract suite lives in contract.py)."""
