"""Staff password hashing with Argon2id (argon2-cffi's recommended parameters)."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(plain: str) -> str:
    """Hashes a password with a fresh random salt."""
    return _hasher.hash(plain)


def verify_password(hash: str, plain: str) -> bool:  # noqa: A002 - the name callers expect
    """Tells whether the password matches the hash; a malformed or empty hash is no match."""
    if not hash or plain is None:
        return False
    try:
        return _hasher.verify(hash, plain)
    except (VerificationError, InvalidHashError, TypeError, ValueError):
        # VerifyMismatchError is a VerificationError; garbage hashes raise InvalidHashError
        return False


def needs_rehash(hash: str) -> bool:  # noqa: A002
    """Tells whether the hash was made with weaker parameters than today's defaults."""
    try:
        return _hasher.check_needs_rehash(hash)
    except (InvalidHashError, ValueError):
        return True
