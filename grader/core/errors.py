"""The grader's own exceptions: instructor mistakes and environment problems.

Student faults never raise; they become values in results. Each ``GraderError`` is turned into
a one-line message and a non-zero exit status in exactly one place, ``grader.cli.main``.
"""


class GraderError(Exception):
    """An instructor mistake or a missing prerequisite, with a message that says what to do."""


class InfrastructureError(GraderError):
    """The machine or the grader failed, not the student: a sandbox that cannot start, data
    that cannot be read, a bug in the grader. The batch stops (results written so far are
    kept) instead of writing a result that would blame a student. ``detail`` holds what the
    instructor needs to report it (a traceback), never shown to students."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message, detail)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message
