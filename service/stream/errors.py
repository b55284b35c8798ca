"""The two ways a step can fail: the event is bad for good (dead-letter it) or the world is (retry it later)."""

from __future__ import annotations


class Rejected(Exception):
    """A permanent, event-specific failure: the event goes to the dead-letter queue with `reason`.

    `stage` names the step that rejected it (decode, fetch, classify) and `reason` is machine-readable
    (dashboards and the DLQ consumers switch on it); `detail` is for humans.
    """

    stage: str = "process"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail or reason.replace("_", " ")

    def __str__(self) -> str:
        return f"{self.stage}/{self.reason}: {self.detail}"


class Transient(Exception):
    """The event is fine but a dependency is not (inference backend down): keep it uncommitted and retry."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(stage, detail)
        self.stage = stage
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.stage}: {self.detail}"
