"""Read: the values every stage shares, and nothing that runs student code.

``notebook`` (a submission read into checked cells) and ``scripts`` (a ``.py`` hand-in as a
notebook), ``reference`` (the trusted solution's functions), ``solution`` (its markers and the
template made from it), ``results`` (frozen, versioned JSON), ``schema`` (the strict tables
the rubric and the course file are read with), ``budgets``, ``errors``, ``paths``, ``inert``
and ``nofollow``.
"""
