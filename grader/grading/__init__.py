"""Grade: one submission end to end (``grade.grade_submission``: read, run, check, score), the
reference canary that proves the path before any student, re-scoring stored results after a
rubric change (``rescore``), and validating an assignment before it is handed out
(``validate``).
"""
