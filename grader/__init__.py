"""Grading harness for the backprop practical: read → sandbox → check → score → render."""

__version__ = "0.1.0"
