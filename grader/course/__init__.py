"""The course: a class's submissions in, final grades and gradebooks out.

``batch`` (a class graded in parallel, incrementally, into an output folder), ``ingest``,
``handins`` and ``zipdir`` (LMS downloads: who handed in what), ``roster`` (the class list),
``coursefile`` (deadlines, late rule, extensions, adjustments), ``final`` (a result with the
course file laid over it), ``gradebook`` (grades.csv, Canvas, Moodle) and ``classroom`` (the
output folder's overview and gradebooks, rebuilt from every result in it).
"""
