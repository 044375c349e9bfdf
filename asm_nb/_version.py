"""The package version, in a leaf module every layer may import (``asm_nb`` itself imports the
whole public surface for type checkers)."""

__version__ = "0.1.0"
