"""Distribute: what goes out to students and to other graders.

``assign`` (the student templates), ``selfcheck`` (the students' ``NAME-check.pyz``) with
``checker`` and ``replay`` (what runs inside it, on the reference's recorded answers), and
``gradescope`` with ``autograder`` (a Gradescope autograder zip, and what runs in it).
"""
