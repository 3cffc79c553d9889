"""Pairwise similarity of submissions over the code the students wrote, for the class view.

MOSS's recipe on Python's own parser: each function's body (its ``def`` line and docstring come
from the template) is parsed, parameters become ``P0, P1...`` and every other local ``V``
(renaming changes nothing), and the statements are printed back by ``ast.unparse`` (layout,
comments and redundant brackets vanish) and cut into tokens. Hashes of every ``K`` consecutive
tokens are *winnowed* (the smallest hash of each window of ``WINDOW`` hashes is kept), so a
match of ``K + WINDOW - 1`` tokens or more is always seen. Fingerprints that occur in the
template are dropped.

Code that many students write the same way (``x @ W + b``) is no evidence of copying: a
fingerprint's weight is ``log((n + 1) / df)`` for one held by ``df`` of the ``n`` submissions,
and none at all when more than ``COMMON_FRACTION`` of the class holds it. Two submissions score
the weighted Jaccard index of their fingerprints: the weight they share over the weight either
has. Pairs at or above the threshold are suspicious; clusters are their connected components.

Everything here is a pure function of the stored sources: no student code runs.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

from grader.core import notebook

K = 10  # tokens per fingerprinted k-gram: shorter runs are too common to mean anything
WINDOW = 4  # winnowing window: every match of K + WINDOW - 1 = 13 tokens is caught
COMMON_FRACTION = 0.2  # fingerprints held by more of the class than this weigh nothing
THRESHOLD = 0.5  # weighted Jaccard at or above which a pair is listed as suspicious
MIN_SHARED = 3  # rare fingerprints a pair must share: one short match is no case
# rare fingerprints in common that make a real implementation's worth (about 50 tokens): a
# pair sharing fewer is listed after every pair sharing this many, whatever its score
SUBSTANTIAL = 12
LOCAL = "V"
_NUMBERED = re.compile(rf"{LOCAL}\d+")
HELPER = "H"  # the notebook's own helpers, stored with the function that uses them
MAX_CHARS = notebook.MAX_SOURCE_CHARS + 1_000  # longer: not compared (nor kept by a result)
MEMORY = 2048  # sources whose normalised text and fingerprints a process remembers
MEMORY_CHARS = 4_000  # longer sources (a function is rarely 1,000) are worked out, not kept
LONG_MEMORY = 64  # but the tokens of this many longer ones are (each up to MAX_CHARS)

# unparse prints canonical Python, so a small pattern tokenises it: strings (with prefixes),
# numbers, names, two- and three-character operators, then any other single character.
_TOKEN = re.compile(
    r"""[rbfuRBFU]{0,2}(?:'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
    r"|\d[\w.]*|\w+|\*\*=?|//=?|>>=?|<<=?|[-+*/%&|^@<>=!:]=|->|\S"
)


@dataclass(frozen=True)
class Token:
    text: str
    first: int  # the lines of the function's source the token comes from (1 = the def line)
    last: int


@dataclass(frozen=True)
class Fingerprint:
    hash: int
    function: str
    first: int
    last: int


@dataclass(frozen=True)
class Region:
    """Where two submissions match: one function of each and the lines that match in each."""

    function_a: str
    function_b: str
    lines_a: tuple[int, ...]
    lines_b: tuple[int, ...]
    weight: float


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    score: float  # weighted Jaccard, 0..1
    shared: int  # rare fingerprints in common
    regions: tuple[Region, ...]
    little: bool = False  # fewer than SUBSTANTIAL fingerprints in common: listed last


@dataclass(frozen=True)
class Note:
    """A function compared only in part, or not at all, and why."""

    student: str
    function: str
    why: str


@dataclass(frozen=True)
class Similarity:
    students: tuple[str, ...]  # those with code of their own to compare
    pairs: tuple[Pair, ...]  # suspicious pairs: substantial ones first, highest score first
    clusters: tuple[tuple[str, ...], ...]  # connected components of the pairs, largest first
    threshold: float
    common: int  # fingerprints ignored because too many students share them
    ceiling: int  # the most submissions a fingerprint may be shared by and still count
    best_unflagged: float  # the highest score below the threshold: how close the rest came
    notes: tuple[Note, ...] = ()  # functions compared in part or not at all


# --------------------------------------------------------------------------- normalising


def tokens(source: str, *, numbered: bool = False) -> tuple[Token, ...]:
    """The normalised tokens of a function's body and of the helpers stored with it (see
    ``grader.core.notebook``): no docstrings, names of the student's own replaced (parameters by
    position ``P0, P1...``; other locals by ``V``, or, ``numbered``, by order of first use
    ``V0, V1...``; the notebook's own helpers by ``H``), layout and comments gone. Source that
    does not parse gives none (it is shown, not compared)."""
    parts = _parts(source) if numbered else _plain_parts(source)
    return tuple(token for part in parts or () for token in part)


def _parts(source: str) -> tuple[tuple[Token, ...], ...] | None:
    """The numbered tokens of each definition in ``source``, remembered per source (a few
    long ones too): the class view asks for them once for its pages and once for the
    similarity, and one parse serves both."""
    return _long(source) if len(source) > MEMORY_CHARS else _short(source)


def _analyse(source: str) -> tuple[tuple[Token, ...], ...] | None:
    """The tokens of each definition in ``source``, apart: a k-gram never spans two of them,
    so that the order helpers are stored in changes nothing. None: not Python that parses (or
    not within the walkers' depth). Whatever a student's text makes the parser or the tree
    walkers raise, it is that text's problem, never the batch's."""
    tree = _parse(source)
    if tree is None:
        return None
    helpers = {name for node in tree.body[1:] for name in _binds(node)}
    try:
        return tuple(_node_tokens(node, helpers) for node in _pieces(tree.body))
    except Exception:  # noqa: BLE001 - RecursionError for a deep expression, and the like
        return None


_short = lru_cache(maxsize=MEMORY)(_analyse)
_long = lru_cache(maxsize=LONG_MEMORY)(_analyse)


def _plain_parts(source: str) -> tuple[tuple[Token, ...], ...] | None:
    """``_parts`` with every local one ``V``, as MOSS has it for fingerprints: moving a
    statement then changes only the k-grams around it. (A global the student named ``V3``
    becomes ``V`` too: harmless.)"""
    parts = _parts(source)
    if parts is None:
        return None
    return tuple(tuple(Token(LOCAL, t.first, t.last) if _NUMBERED.fullmatch(t.text) else t
                       for t in part) for part in parts)


def _pieces(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` with every class opened: each method is a piece of its
    own, as a function is (a copy moved into static methods is no new code)."""
    found, stack = [], list(reversed(body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ClassDef):
            stack += reversed(node.body)
        else:
            found.append(node)
    return found


def _parse(source: str) -> ast.Module | None:
    if len(source) > MAX_CHARS:
        return None
    try:
        with warnings.catch_warnings():  # ("invalid escape sequence": the student's business)
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except Exception:  # noqa: BLE001 - SyntaxError, ValueError, MemoryError, RecursionError...
        return None


def _binds(node: ast.stmt) -> list[str]:
    """The names a stored definition binds (``def``, ``class``, ``name = ...``)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [t.id for t in targets if isinstance(t, ast.Name)]
    return []


def _node_tokens(node: ast.stmt, helpers: set[str]) -> tuple[Token, ...]:
    """A function's body as it renames it; any other statement with only the helpers
    renamed."""
    found: list[Token] = []
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        names = {**dict.fromkeys(helpers, HELPER), **_placeholders(node)}
        for statement in _Renamer(names).visit(ast.Module(body=_body(node), type_ignores=[])).body:
            _statement_tokens(statement, found)
    else:
        _statement_tokens(_Renamer(dict.fromkeys(helpers, HELPER)).visit(node), found)
    return tuple(found)


def _body(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    """Without the docstring: the template's, or a comment's worth of words."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def forget() -> None:
    """Drop what this process remembers of sources (a benchmark's cold start, a test)."""
    _short.cache_clear()
    _long.cache_clear()
    _normalised.cache_clear()
    _fingerprints.cache_clear()
    _all_hashes.cache_clear()


def normalised(source: str) -> str:
    """One line that two implementations share exactly when they differ only in names,
    layout and comments (locals are numbered, so ``x.T @ dout`` and ``dout.T @ x`` differ)."""
    if len(source) > MEMORY_CHARS:  # (a hostile giant is not kept)
        return _normalised.__wrapped__(source)
    return _normalised(source)


@lru_cache(maxsize=MEMORY)
def _normalised(source: str) -> str:
    """Remembered per source, as the fingerprints are: the class view and the similarity
    page ask for every function, and handed-out and copied code recur across a class."""
    parts = _parts(source) or ()
    return " | ".join(" ".join(t.text for t in part) for part in parts if part)


def _placeholders(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """What each name of the student's own becomes: parameters by position, other locals by
    order of first use. Globals (``np``, ``range``) and attributes keep their names: they
    carry meaning."""
    arguments = function.args
    params = [a.arg for a in (*arguments.posonlyargs, *arguments.args, arguments.vararg,
                              *arguments.kwonlyargs, arguments.kwarg) if a is not None]
    names = {name: f"P{i}" for i, name in enumerate(params)}
    local, uses = _local_names(function)
    local -= names.keys()
    first_use = sorted((where, name) for name, where in uses.items() if name in local)
    for name in [name for _, name in first_use] + sorted(local - uses.keys()):
        names[name] = f"{LOCAL}{len(names) - len(params)}"
    return names


def _local_names(function: ast.AST) -> tuple[set[str], dict[str, tuple[int, int]]]:
    """Every name the function binds (what a student may rename freely), and where each name
    is first used."""
    names: set[str] = set()
    uses: dict[str, tuple[int, int]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Name):
            where = (node.lineno, node.col_offset)
            if node.id not in uses or where < uses[node.id]:
                uses[node.id] = where
            if not isinstance(node.ctx, ast.Load):
                names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node is not function:
            names.add(node.name)
    return names, uses


class _Renamer(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(id=self.names.get(node.id, node.id), ctx=node.ctx)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.Constant:
        """An f-string is a string: one ``S`` token whatever its fields, so they are neither
        renamed nor printed (one with thousands of fields took a third of a second)."""
        return ast.Constant(value="")

    def visit_arg(self, node: ast.arg) -> ast.arg:
        return ast.arg(arg=self.names.get(node.arg, node.arg))

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        self.generic_visit(node)
        if node.name:
            node.name = self.names.get(node.name, node.name)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        self.generic_visit(node)
        node.name = self.names.get(node.name, node.name)
        return node


_BLOCKS = ("body", "orelse", "finalbody")


def _statement_tokens(node: ast.stmt, out: list[Token]) -> None:
    """Tokens in source order, each carrying its statement's lines (a compound statement's
    header gets the lines before its body)."""
    blocks = [(f, getattr(node, f)) for f in _BLOCKS if getattr(node, f, None)]
    handlers = getattr(node, "handlers", None) or []
    if not blocks or isinstance(node, ast.Match):
        _emit(node, node.lineno, node.end_lineno or node.lineno, out)
        return
    header = copy.copy(node)
    for field, _ in blocks:
        setattr(header, field, [])
    if handlers and isinstance(header, ast.Try | ast.TryStar):
        header.handlers = []
    first_child = min(s.lineno for _, block in blocks for s in block)
    _emit(header, node.lineno, max(node.lineno, first_child - 1), out)
    for field, block in blocks:
        if field == "finalbody":
            for handler in handlers:
                _handler_tokens(handler, out)
            handlers = []
        for statement in block:
            _statement_tokens(statement, out)
    for handler in handlers:
        _handler_tokens(handler, out)


def _handler_tokens(handler: ast.ExceptHandler, out: list[Token]) -> None:
    header = copy.copy(handler)
    header.body = []
    _emit(header, handler.lineno, handler.lineno, out)
    for statement in handler.body:
        _statement_tokens(statement, out)


def _emit(node: ast.AST, first: int, last: int, out: list[Token]) -> None:
    try:
        text = ast.unparse(node)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return
    for match in _TOKEN.finditer(text):
        word = match.group()
        if word == "pass":
            continue  # an emptied block prints as ``pass``; a real ``pass`` carries nothing
        out.append(Token(_token_class(word), first, last))


def _token_class(word: str) -> str:
    """Strings become ``S``: a changed message is no change of code."""
    return "S" if word[-1] in "'\"" else word


# --------------------------------------------------------------------------- fingerprints


def fingerprints(function: str, source: str, *, k: int = K,
                 window: int = WINDOW) -> tuple[Fingerprint, ...]:
    """The winnowed fingerprints of one function's body and its helpers' (Schleimer,
    Wilkerson and Aiken), each definition's apart."""
    return _winnowed(function, source, k, window) or ()


def _winnowed(function: str, source: str, k: int = K,
              window: int = WINDOW) -> tuple[Fingerprint, ...] | None:
    """``fingerprints``, or None for source that does not parse."""
    if len(source) > MEMORY_CHARS:
        return _fingerprints.__wrapped__(function, source, k, window)
    return _fingerprints(function, source, k, window)


@lru_cache(maxsize=MEMORY)
def _fingerprints(function: str, source: str, k: int,
                  window: int) -> tuple[Fingerprint, ...] | None:
    parts = _plain_parts(source)
    if parts is None:
        return None
    return tuple(chosen for part in parts
                 for chosen in _winnow([_kgram(part[i:i + k], function)
                                        for i in range(len(part) - k + 1)], window))


def _winnow(grams: list[Fingerprint], window: int) -> list[Fingerprint]:
    if len(grams) <= window:
        return grams[:1] and [min(grams, key=lambda g: g.hash)]
    chosen: dict[int, Fingerprint] = {}
    for start in range(len(grams) - window + 1):
        span = grams[start:start + window]
        best = min(range(window), key=lambda i: (span[i].hash, -i))  # rightmost minimum
        chosen.setdefault(start + best, span[best])
    return [chosen[i] for i in sorted(chosen)]


def all_hashes(source: str, *, k: int = K) -> frozenset[int]:
    """Every k-gram hash of a function (not only the winnowed ones): what the template gives.
    Remembered: a class's template is the same for every batch of it."""
    if len(source) > MEMORY_CHARS:
        return _all_hashes.__wrapped__(source, k)
    return _all_hashes(source, k)


@lru_cache(maxsize=64)
def _all_hashes(source: str, k: int) -> frozenset[int]:
    return frozenset(_kgram(part[i:i + k], "").hash for part in _plain_parts(source) or ()
                     for i in range(len(part) - k + 1))


def _kgram(run: tuple[Token, ...], function: str) -> Fingerprint:
    text = "\x1f".join(t.text for t in run).encode()
    digest = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")
    return Fingerprint(digest, function, min(t.first for t in run), max(t.last for t in run))


# --------------------------------------------------------------------------- comparing


def compare(
    sources: Mapping[str, Mapping[str, str]],
    *,
    template: Mapping[str, str] | None = None,
    threshold: float = THRESHOLD,
    common_fraction: float = COMMON_FRACTION,
    unseen: Iterable[Note] = (),
) -> Similarity:
    """Suspicious pairs and clusters among ``sources`` (student -> function -> source).
    ``template`` holds the handed-out functions: what they contain is nobody's own code.
    ``unseen``: what the caller knows is missing from ``sources`` (code the reader did not
    read), listed with what could not be compared."""
    given = set().union(*(all_hashes(s) for s in (template or {}).values()))
    held, notes = {}, list(unseen)
    for student, functions in sorted(sources.items()):
        held[student] = _held(student, functions, given, notes)
    held = {student: prints for student, prints in held.items() if prints}
    holders: dict[int, list[str]] = defaultdict(list)
    for student, prints in held.items():
        for value in prints:
            holders[value].append(student)
    weight = _weights(holders, len(held), common_fraction)
    totals = {s: sum(weight[h] for h in prints) for s, prints in held.items()}
    shared = _shared(holders, weight)
    pairs, best_below = [], 0.0
    for (a, b), (common, count) in sorted(shared.items()):
        score = common / max(totals[a] + totals[b] - common, 1e-12)
        if score >= threshold and count >= MIN_SHARED:
            pairs.append(Pair(a, b, round(score, 4), count,
                              _regions(held[a], held[b], weight), count < SUBSTANTIAL))
        else:
            best_below = max(best_below, score)
    # a short match (a one-liner both wrote) never tops a real implementation shared
    pairs.sort(key=lambda p: (p.little, -p.score, p.a, p.b))
    common_count = sum(1 for h in holders if weight[h] == 0.0 and len(holders[h]) > 1)
    return Similarity(tuple(held), tuple(pairs), _clusters(pairs), threshold, common_count,
                      _ceiling(len(held), common_fraction), round(min(best_below, threshold), 4),
                      tuple(notes))


def _held(student: str, functions: Mapping[str, str], given: set[int],
          notes: list[Note]) -> dict[int, list[Fingerprint]]:
    """A submission's fingerprints by hash, the template's left out; what could not be
    compared goes to ``notes``, whatever went wrong: one student's text never stops the
    comparison of the others."""
    found: dict[int, list[Fingerprint]] = defaultdict(list)
    for name, source in sorted(functions.items()):
        if not isinstance(source, str):
            continue
        try:
            prints = _winnowed(name, source)
        except Exception as error:  # noqa: BLE001 - see the docstring
            prints, why = None, f"could not be compared ({type(error).__name__})"
        else:
            why = _why_not(source)
        if prints is None or notebook.CUT in source or notebook.LEFT_OUT in source:
            notes.append(Note(student, name, why if prints is None else _in_part(source)))
        for fingerprint in prints or ():
            if fingerprint.hash not in given:
                found[fingerprint.hash].append(fingerprint)
    return dict(found)


def _why_not(source: str) -> str:
    if len(source) > MAX_CHARS:
        return f"not compared: {len(source):,} characters, more than the {MAX_CHARS:,} compared"
    if notebook.CUT in source:
        return "not compared: the grader kept only the start of this long function"
    return "not compared: its code does not parse (it is shown, not compared)"


def _in_part(source: str) -> str:
    if notebook.CUT in source:
        return "compared in part: the grader kept only the start of this long function"
    return "compared without some of its helpers: the grader keeps a function's first ones"


def _weights(holders: Mapping[int, list[str]], count: int,
             common_fraction: float) -> dict[int, float]:
    """Rare shared code is evidence, common code is not (see the module's docstring)."""
    ceiling = _ceiling(count, common_fraction)
    return {h: 0.0 if len(who) > ceiling else math.log((count + 1) / len(who))
            for h, who in holders.items()}


def _ceiling(count: int, common_fraction: float) -> int:
    """A pair always counts, however small the class."""
    return max(2, math.floor(common_fraction * count))


def _shared(holders: Mapping[int, list[str]],
            weight: Mapping[int, float]) -> dict[tuple[str, str], tuple[float, int]]:
    """For every pair holding a weighted fingerprint in common: its weight and count. Only
    rare fingerprints are walked, so the cost follows the evidence, not the class squared."""
    found: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for value, who in holders.items():
        if len(who) < 2 or weight[value] == 0.0:
            continue
        for pair in combinations(sorted(who), 2):
            entry = found[pair]
            entry[0] += weight[value]
            entry[1] += 1
    return {pair: (total, int(count)) for pair, (total, count) in found.items()}


def _regions(a: Mapping[int, list[Fingerprint]], b: Mapping[int, list[Fingerprint]],
             weight: Mapping[int, float]) -> tuple[Region, ...]:
    """The matching lines of each function pair, for the side-by-side view."""
    lines: dict[tuple[str, str], tuple[set[int], set[int], list[float]]] = {}
    for value in sorted(a.keys() & b.keys()):
        if weight[value] == 0.0:
            continue
        for left in a[value]:
            for right in b[value]:
                entry = lines.setdefault((left.function, right.function), (set(), set(), [0.0]))
                entry[0].update(range(left.first, left.last + 1))
                entry[1].update(range(right.first, right.last + 1))
                entry[2][0] += weight[value]
    regions = [Region(fa, fb, tuple(sorted(la)), tuple(sorted(lb)), round(w[0], 4))
               for (fa, fb), (la, lb, w) in lines.items()]
    return tuple(sorted(regions, key=lambda r: (-r.weight, r.function_a, r.function_b)))


def _clusters(pairs: Iterable[Pair]) -> tuple[tuple[str, ...], ...]:
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for pair in pairs:
        parent[root(pair.a)] = root(pair.b)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in parent:
        groups[root(name)].append(name)
    found = [tuple(sorted(g)) for g in groups.values() if len(g) > 1]
    return tuple(sorted(found, key=lambda g: (-len(g), g)))
