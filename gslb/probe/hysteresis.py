"""Rise/fall hysteresis: one bad check does not take an endpoint out, one good one does not
bring it back."""

from __future__ import annotations


class Hysteresis:
    """Down after `fall` consecutive failures, up after `rise` consecutive successes.

    The very first result decides the starting state, so a new agent does not wait `rise`
    intervals before it can report anything.
    """

    def __init__(self, rise: int, fall: int) -> None:
        self.rise, self.fall = rise, fall
        self.up: bool | None = None
        self.streak = 0  # consecutive results disagreeing with the current state

    def observe(self, ok: bool) -> bool:
        """Record one result; True when the state changed."""
        if self.up is None:
            self.up = ok
            return True
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.up = ok
            self.streak = 0
            return True
        return False
