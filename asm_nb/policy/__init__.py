"""Guard rails for runs: the ``Policy`` model, stacking, the pure evaluator, preflight, the
adapter compiler and the per-run runtime (docs/policies.md, policies).

>>> from asm_nb.policy import Policy, stack_merge
>>> stack_merge([Policy(name="org", on_violation="warn"), Policy(name="user")]).on_violation
'cancel'

``asm_nb.run_once(prompt, provider, policy=Policy(...))`` enforces a policy while the run
streams; see ``policy/runtime.py``.
"""

from __future__ import annotations

from .compiler import compile, compile_for_adapter
from .evaluator import Violation, evaluate
from .policy import ACTIONS, LIMIT_KINDS, Policy, coerce, merge, stack_merge
from .options import from_options
from .preflight import check
from .runtime import Decision, PolicyRuntime, RunPolicy, start

__all__ = ["Policy", "LIMIT_KINDS", "ACTIONS", "merge", "stack_merge", "coerce", "evaluate", "Violation", "check", "compile",
           "compile_for_adapter", "PolicyRuntime", "RunPolicy", "Decision", "start", "from_options"]

