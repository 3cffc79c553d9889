"""Benchmarks of the grader; run ``python -m benchmarks.bench`` (``make bench``)."""
