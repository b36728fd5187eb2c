"""In-memory stand-ins for the session/consent stores, so the core is tested without SQL."""

from __future__ import annotations

from dataclasses import dataclass, replace

from idp.sessions.consents import Consent
from idp.sessions.store import LoginSession


class MemorySessionStore:
    def __init__(self) -> None:
        self.rows: dict[bytes, LoginSession] = {}
        self.clients: dict[str, set[str]] = {}

    def insert(self, digest: bytes, session: LoginSession) -> None:
        self.rows[digest] = session

    def get(self, digest: bytes) -> LoginSession | None:
        return self.rows.get(digest)

    def get_by_sid(self, sid: str) -> LoginSession | None:
        return next((s for s in self.rows.values() if s.sid == sid), None)

    def update(self, digest: bytes, session: LoginSession, new_digest: bytes | None = None) -> bool:
        if digest not in self.rows:
            return False
        del self.rows[digest]
        self.rows[new_digest or digest] = session
        return True

    def slide(self, digest: bytes, last_seen_at: float, idle_expires_at: float) -> bool:
        if digest not in self.rows:
            return False
        self.rows[digest] = replace(self.rows[digest], last_seen_at=last_seen_at, idle_expires_at=idle_expires_at)
        return True

    def signed_into(self, sid: str, client_id: str, now: float) -> None:
        self.clients.setdefault(sid, set()).add(client_id)

    def delete(self, sids: list[str], *, reason: str = "") -> list[LoginSession]:
        out = []
        for digest, s in list(self.rows.items()):
            if s.sid in sids:
                out.append(self.rows.pop(digest))
        return out

    def list_for_user(self, user_id: str) -> list[LoginSession]:
        return [s for s in self.rows.values() if s.user_id == user_id]


class MemoryConsentStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Consent] = {}

    def get(self, user_id: str, client_id: str) -> Consent | None:
        return self.rows.get((user_id, client_id))

    def put(self, consent: Consent) -> None:
        self.rows[(consent.user_id, consent.client_id)] = consent

    def delete(self, user_id: str, client_id: str) -> bool:
        return self.rows.pop((user_id, client_id), None) is not None

    def list_for_user(self, user_id: str) -> list[Consent]:
        return [c for (u, _), c in self.rows.items() if u == user_id]


@dataclass
class FakeUser:
    id: str
    disabled: bool = False


class FakeUsers:
    def __init__(self, *ids: str) -> None:
        self.users = {i: FakeUser(i) for i in ids}

    def get(self, user_id: str) -> FakeUser | None:
        return self.users.get(user_id)
