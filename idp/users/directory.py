"""The user directory: stable opaque ``sub`` values, constant-work authentication."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Protocol

from idp.clock import Clock
from idp.crypto import random_id
from idp.users.password_policy import MAX_PASSWORD, password_problem
from idp.users.passwords import Passwords

_FLAG = re.compile(r"[a-z0-9_.-]{1,64}")


class UserError(ValueError):
    pass


@dataclass
class User:
    id: str
    username: str
    email: str | None
    email_verified: bool
    name: str | None
    password_hash: str
    disabled: bool
    created_at: float
    updated_at: float
    flags: list[str] = field(default_factory=list)
    """Operator labels (``admin``); the second-factor policy can require a factor of users with one."""


class UserStore(Protocol):
    def get(self, user_id: str) -> User | None: ...
    def by_username(self, username: str) -> User | None: ...
    def list(self) -> list[User]: ...
    def save(self, user: User) -> None: ...


class Directory:
    def __init__(self, store: UserStore, passwords: Passwords, clock: Clock) -> None:
        self.store = store
        self.passwords = passwords
        self._clock = clock

    def create(self, username: str, password: str, *, email: str | None = None, name: str | None = None) -> User:
        username = username.strip()
        if not username or len(username) > 200 or not username.isprintable():
            raise UserError("username must be 1-200 printable characters")
        self.check_password(password, username=username, email=email)
        if self.store.by_username(username) is not None:
            raise UserError(f"user {username!r} already exists")
        now = self._clock.now()
        user = User(
            id=random_id(16),
            username=username,
            email=email,
            email_verified=False,
            name=name,
            password_hash=self.passwords.hash(password),
            disabled=False,
            created_at=now,
            updated_at=now,
        )
        self.store.save(user)
        return user

    @staticmethod
    def check_password(password: str, *, username: str = "", email: str | None = None) -> None:
        """Raises UserError (a message for the person) unless ``password`` may be set (idp.users.password_policy)."""
        problem = password_problem(password, username=username, email=email)
        if problem is not None:
            raise UserError(problem)

    def authenticate(self, username: str, password: str) -> User | None:
        """Blocking (Argon2id): call from a worker thread. Same work for unknown and known users."""
        known = len(username) <= 200 and username.isprintable()  # no NUL/control characters to the database
        user = self.store.by_username(username.strip()) if known else None
        ok = self.passwords.verify(user.password_hash if user else None, password[:MAX_PASSWORD])
        if not ok or user is None or user.disabled:
            return None
        if self.passwords.needs_rehash(user.password_hash):
            user = replace(user, password_hash=self.passwords.hash(password), updated_at=self._clock.now())
            self.store.save(user)
        return user

    def set_password(self, user: User, password: str) -> User:
        self.check_password(password, username=user.username, email=user.email)
        user = replace(user, password_hash=self.passwords.hash(password), updated_at=self._clock.now())
        self.store.save(user)
        return user

    def set_flags(self, user: User, flags: list[str]) -> User:
        """Replace the user's flags: each 1-64 characters of ``[a-z0-9_.-]``, at most 16."""
        clean = sorted({f.strip() for f in flags if f.strip()})
        if len(clean) > 16 or not all(_FLAG.fullmatch(f) for f in clean):
            raise UserError("flags must be at most 16 names of 1-64 characters a-z, 0-9, '_', '.', '-'")
        user = replace(user, flags=clean, updated_at=self._clock.now())
        self.store.save(user)
        return user

    def set_disabled(self, username: str, disabled: bool) -> User:
        user = self.store.by_username(username)
        if user is None:
            raise UserError(f"no user {username!r}")
        user = replace(user, disabled=disabled, updated_at=self._clock.now())
        self.store.save(user)
        return user
