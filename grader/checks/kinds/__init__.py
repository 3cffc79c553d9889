"""The kinds of rubric test."""
