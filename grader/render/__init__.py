"""Render: pages and files drawn from stored results alone, never by running code.

``report`` (a student's feedback page and the class overview), ``figures``, ``classview`` and
``similarity`` (the class function by function, and who shares whose code), ``export``
(Gradescope's ``results.json``) and ``summary`` (the self-check's report in a terminal).
"""
