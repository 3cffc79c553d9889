"""The grader's own exceptions: instructor mistakes and environment problems.

Student faults never raise; they become values in results. Each ``GraderError`` is turned into
a one-line message and a non-zero exit status in exactly one place, ``grader.cli.main``.
"""


class GraderError(Exception):
    """An instructor mistake or a missing prerequisite, with a message that says what to do."""
