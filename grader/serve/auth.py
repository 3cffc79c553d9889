"""Who is asking: students by a personal token, instructors by a password, both by session.

- **Passwords** are kept only as scrypt hashes (``hashlib.scrypt``, n=2^14, r=8, p=1, a
  random salt per password), compared in constant time.
- **Student tokens** are derived from the server's secret key and the student's id (HMAC),
  so the instructor can download them again at any time; the database keeps only their
  SHA-256, to find the student. A new token for one student (a leaked link) is a new
  generation of the derivation; the old one stops working.
- **Sessions** are random 256-bit values in an HttpOnly, SameSite=Lax cookie (Secure over
  https); the database keeps their SHA-256 with an idle and an absolute expiry, and each has
  its own CSRF token that every form must carry back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from grader.serve.store import Store

SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
SESSION_COOKIE = "grader_session"
PRESESSION_COOKIE = "grader_pre"  # for the sign-in forms' CSRF token, before a session
ONE_TIME_LINK_SECONDS = 3600


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return "scrypt${n}${r}${p}${salt}${digest}".format(
        **SCRYPT, salt=_b64(salt), digest=_b64(digest))


def check_password(password: str, stored: str | None) -> bool:
    """Constant time whatever is wrong; a missing or malformed hash matches nothing (a dummy
    derivation still runs, so that timing does not tell which instructors exist)."""
    try:
        kind, n, r, p, salt, digest = (stored or "").split("$")
        params = {"n": int(n), "r": int(r), "p": int(p)}
        if kind != "scrypt":
            raise ValueError
        salt_bytes, expected = _unb64(salt), _unb64(digest)
    except ValueError:
        hashlib.scrypt(password.encode(), salt=b"0" * 16, dklen=32, **SCRYPT)
        return False
    got = hashlib.scrypt(password.encode(), salt=salt_bytes, dklen=len(expected),
                         maxmem=2 ** 26, **params)
    return hmac.compare_digest(got, expected)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def load_secret(path: Path) -> bytes:
    """The server's key (made once, readable by its owner only). Workers never read it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path}: the server's key is too short; delete it to make a new one")
    return key


def student_token(secret: bytes, student: str, generation: int) -> str:
    mac = hmac.new(secret, f"student-token|{generation}|{student}".encode(), hashlib.sha256)
    return _b64(mac.digest())[:32]


def refresh_tokens(store: Store, secret: bytes) -> dict[str, str]:
    """Every student's current token (from the key and their generation), the database's
    digests brought up to date: ``{student: token}``."""
    tokens = {s: student_token(secret, s, g) for s, g in store.token_generations().items()}
    store.set_token_digests({s: digest(t) for s, t in tokens.items()})
    return tokens


def form_token(secret: bytes, presession: str) -> str:
    """The CSRF token of a sign-in form, bound to the browser's pre-session cookie."""
    return _b64(hmac.new(secret, f"form|{presession}".encode(), hashlib.sha256).digest())


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


@dataclass(frozen=True)
class Session:
    key: str  # the digest the database keeps
    role: str  # "student" or "instructor"
    who: str
    csrf: str


@dataclass(frozen=True)
class Sessions:
    store: Store
    idle_seconds: float = 2 * 3600
    max_seconds: float = 12 * 3600

    def start(self, role: str, who: str) -> tuple[str, Session]:
        """A new session: the cookie's value (never stored) and the session."""
        value = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        key = digest(value)
        self.store.add_session(key, role, who, csrf, time.time() + self.idle_seconds)
        return value, Session(key, role, who, csrf)

    def find(self, cookie: str | None) -> Session | None:
        """The live session of a cookie; an expired one is deleted and gives None. Its idle
        expiry moves on at most once a minute (one write, not one per request)."""
        if not cookie or len(cookie) > 200:
            return None
        key = digest(cookie)
        row = self.store.session(key)
        if row is None:
            return None
        now = time.time()
        if row["expires"] < now or row["created"] + self.max_seconds < now:
            self.store.drop_session(key)
            return None
        if now - row["seen"] > 60:
            self.store.touch_session(key, min(now + self.idle_seconds,
                                              row["created"] + self.max_seconds))
        return Session(key, row["role"], row["who"], row["csrf"])

    def end(self, session: Session) -> None:
        self.store.drop_session(session.key)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
