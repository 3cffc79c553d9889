"""Check: the rubric, and the engine that turns what a notebook's functions return into
verdicts and points, in the grader's own process.

``rubric`` (an assignment's tests as data, parsed once against a strict schema), ``engine``
(every test of a rubric, one kind after another), ``kinds/`` (one module per kind of test),
``context`` (what every kind shares), ``expectations`` (the reference's answers, computed once
per batch), ``compare``, ``diagnose``, ``counterexample``, ``scoring`` (the one credit policy),
``shortcuts`` (the static scan for forbidden library calls), ``inputs``, and ``culprit`` with
``fixed_net`` (the MNIST diagnostic's network, trained from the grader's side).
"""
