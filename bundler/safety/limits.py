"""The one set of limits the static scan and the restricted unpickler enforce, and the allocation budget.

Both run the same interpreter (``bundler.safety.machine``) under the same ``Limits``, so a payload the scan accepts
can never exceed a bound the loader enforces, or the reverse.

**Allocation budget.** A pickle can ask an allowed constructor to allocate far more memory than the payload holds
(``bytearray(3 << 30)`` is 38 bytes). The loader charges every allocation whose size comes from an argument rather
than from bytes present in the payload (array shapes, byte counts, sparse matrix shapes, tree sizes...) to a budget
of ``budget_factor`` times the payload's (decompressed) size plus ``budget_floor``, and refuses the payload as unsafe
*before* allocating once the budget would be exceeded. Everything else the unpickler builds costs at most a constant
per opcode (a list item, a dict entry), so memory stays linear in the payload size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_LIMITS", "Budget", "BudgetExceeded", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds on memory and time; a payload beyond any of them is refused.

    The defaults are far above what a real scikit-learn model needs and far below what would hurt the loader.
    ``max_ratio`` only applies once ``ratio_floor`` decompressed bytes were produced, so small, very regular
    payloads (an all-zero array) still load.
    """

    max_bytes: int = 16 << 30  # decompressed (or plain) stream size
    max_ratio: float = 2000.0
    ratio_floor: int = 64 << 20
    max_stack: int = 1_000_000
    max_memo: int = 2_000_000
    max_marks: int = 10_000
    max_nesting: int = 4  # nested object-array streams
    max_line: int = 1 << 20  # protocol-0 text arguments
    max_container: int = 256  # items of a tuple/dict the scan keeps symbolically; beyond that contents are dropped
    max_symbolic_str: int = 1 << 16  # longer strings are opaque to the scan
    budget_factor: int = 2
    budget_floor: int = 64 << 20

    def budget_for(self, payload_bytes: int) -> int:
        """The allocation budget of a payload of ``payload_bytes`` (decompressed) bytes."""
        return self.budget_factor * max(payload_bytes, 0) + self.budget_floor


DEFAULT_LIMITS: Final = Limits()


class BudgetExceeded(Exception):
    """Raised by ``Budget.charge``; the unpickler turns it into ``UnsafeContent`` naming what asked."""

    def __init__(self, what: str, requested: int, left: int) -> None:
        super().__init__(f"{what} asks for {requested} bytes, beyond the allocation budget ({left} bytes left)")
        self.what = what
        self.requested = requested
        self.left = left


class Budget:
    """Bytes the loader may still allocate on the payload's behalf."""

    __slots__ = ("left", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def charge(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be allocated for ``what``; raise ``BudgetExceeded`` before it happens."""
        if nbytes < 0 or nbytes > self.left:
            raise BudgetExceeded(what, nbytes, self.left)
        self.left -= nbytes
