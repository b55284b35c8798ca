"""Jittered exponential backoff for retrying an event across iterations of a source loop.

tenacity's Retrying owns its loop; here the loop must go back to `consumer.poll()` between attempts (so the
consumer stays in its group during a long inference outage), so only tenacity's delay schedule is used.
"""

from __future__ import annotations

import threading

from tenacity import RetryCallState, wait_random_exponential


class Backoff:
    """tenacity's full-jitter exponential wait (base * 2**n, capped), counted across loop iterations."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0) -> None:
        self._wait = wait_random_exponential(multiplier=base_s, max=cap_s)
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def wait(self, stop: threading.Event) -> None:
        """Sleep the next delay, returning early when `stop` is set (SIGTERM during an outage)."""
        self.failures += 1
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = self.failures
        stop.wait(self._wait(state))
