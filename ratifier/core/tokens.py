"""Token files: ``holder-id token`` lines, kept as the tokens' SHA-256 (reviewers, the HTTP
gateway's clients). Tokens are never shown: not in errors, logs or ``repr``."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from pathlib import Path

from ratifier.core.errors import ConfigError, UnknownReviewer
from ratifier.core.models import AUTO_REVIEWER

__all__ = ["Reviewers", "load_tokens", "token_digest"]

_REVIEWER_ID = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def token_digest(token: str) -> bytes:
    """What is kept of a token: its SHA-256 (tokens are 16+ random characters, not passwords,
    so a fast hash is enough: there is nothing to guess from it)."""
    return hashlib.sha256(token.encode()).digest()


class Reviewers:
    """Who may review: reviewer id <-> secret token, kept only as the token's SHA-256 and
    compared in constant time.

    The file holds one ``reviewer-id token`` pair a line (``#`` starts a comment); the token may
    be written as ``sha256:<64 hex digits>`` (``printf %s TOKEN | sha256sum``), so the file
    need not hold it at all. Tokens are never shown: not in errors, logs or ``repr``.
    """

    def __init__(self, digests: Mapping[bytes, str]) -> None:  # token SHA-256 -> reviewer id
        self._digests = dict(digests)
        self.ids = frozenset(self._digests.values())

    def __repr__(self) -> str:
        return f"Reviewers({sorted(self.ids)})"

    @classmethod
    def parse(cls, text: str, *, source: str = "reviewer tokens") -> Reviewers:
        digests: dict[bytes, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ConfigError(f"{source}, line {number}: expected 'reviewer-id token'")
            reviewer, token = parts
            digest = _digest_entry(token, f"{source}, line {number}")
            if not _REVIEWER_ID.fullmatch(reviewer) or reviewer == AUTO_REVIEWER:
                raise ConfigError(
                    f"{source}, line {number}: reviewer id {reviewer!r} must be 1-64 letters, "
                    f"digits or ._@- and not {AUTO_REVIEWER!r}"
                )
            if digest in digests:
                raise ConfigError(f"{source}, line {number}: a token is used twice")
            digests[digest] = reviewer
        return cls(digests)

    def identify(self, token: str | None) -> str:
        """The reviewer id of ``token``; :class:`UnknownReviewer` for any other token."""
        found = None
        presented = token_digest(token or "")
        for known, reviewer in self._digests.items():
            # Every digest compared, in constant time each: no early exit to time.
            if token and hmac.compare_digest(known, presented):
                found = reviewer
        if found is None:
            raise UnknownReviewer("no reviewer has that token")
        return found

    def check(self, reviewer: str) -> str:
        if reviewer not in self.ids:
            raise UnknownReviewer(f"{reviewer!r} is not on the reviewer list")
        return reviewer


def _digest_entry(token: str, where: str) -> bytes:
    if token.startswith("sha256:"):
        try:
            digest = bytes.fromhex(token.removeprefix("sha256:"))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(f"{where}: sha256: must be followed by 64 hex digits")
        return digest
    if len(token) < 16:
        raise ConfigError(f"{where}: the token is shorter than 16 chars")
    return token_digest(token)


def load_tokens(path: Path | None, *, variable: str, holder: str) -> Reviewers:
    """A file of ``holder-id token`` lines (the reviewers', the HTTP gateway's clients'), set by
    ``variable``; ConfigError if it is unset, unreadable, invalid or empty."""
    if path is None:
        raise ConfigError(f"no {holder}s: set {variable} to a file of '{holder}-id token' lines")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {holder} tokens file {path}: {exc.strerror}") from None
    tokens = Reviewers.parse(text, source=str(path))
    if not tokens.ids:
        raise ConfigError(f"the {holder} tokens file {path} lists no {holder}")
    return tokens
