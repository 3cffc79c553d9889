"""Run: student code in another process, behind as many walls as the machine offers.

``sandbox`` (one sandboxed runtime process, forked from a pre-warmed zygote where namespaces
exist), ``bubblewrap`` (which ``bwrap`` hides the file system), ``session`` (a notebook's cells
run and its functions called, surviving anything the student's code does), ``replies`` (what
the grader takes from an answer, checked first), ``sealed`` and ``mnist`` (the read-only data a
sandbox may see), and ``inside/``, the only part of the grader mounted into the sandbox.
"""
