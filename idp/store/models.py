"""SQLAlchemy tables: the durable source of truth.

Bearer secrets are never stored: refresh tokens, client secrets and session ids
are kept as keyed digests (``idp.crypto.Digester``); private keys are AES-GCM
encrypted. Times are float seconds since the epoch (the injected clock's unit),
which behaves the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    # Every mapping here is a plain Table, which the Core statements in the repositories need.
    __table__: ClassVar[Table]


class ClientRow(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # web | native | service
    auth_method: Mapped[str] = mapped_column(String(32))
    secret_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    jwks: Mapped[dict | None] = mapped_column(JSON)  # public keys for private_key_jwt
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str] = mapped_column(String(300), default="")
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=True)
    access_token_alg: Mapped[str | None] = mapped_column(String(10))
    id_token_alg: Mapped[str | None] = mapped_column(String(10))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_cors_origins: Mapped[list] = mapped_column(JSON, default=list)
    claims_in_id_token: Mapped[bool] = mapped_column(Boolean, default=False)
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2048))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    token_exchange_audiences: Mapped[list] = mapped_column(JSON, default=list)  # RFC 8693 targets
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the stable `sub`
    username: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    flags: Mapped[list] = mapped_column(JSON, default=list)  # operator labels ("admin"): the second-factor policy


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(16), index=True)  # next|active|retired|removed|compromised
    private_enc: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    activate_after: Mapped[float] = mapped_column(Float)  # earliest moment next -> active
    activated_at: Mapped[float | None] = mapped_column(Float)
    retired_at: Mapped[float | None] = mapped_column(Float)
    remove_after: Mapped[float | None] = mapped_column(Float)  # retired -> removed
    compromised_at: Mapped[float | None] = mapped_column(Float)


class LoginSessionRow(Base):
    __tablename__ = "login_sessions"

    id_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)  # public id, goes into tokens
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[float] = mapped_column(Float)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    csrf_secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    idle_expires_at: Mapped[float] = mapped_column(Float)
    absolute_expires_at: Mapped[float] = mapped_column(Float)
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    factors: Mapped[dict] = mapped_column(JSON, default=dict)  # amr method -> when it was last used


class FactorRow(Base):
    """A person's authenticator: a TOTP secret (AES-GCM sealed like private keys) or another kind's public data."""

    __tablename__ = "user_factors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # totp | passkey
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    confirmed_at: Mapped[float | None] = mapped_column(Float)  # None: enrolment not yet confirmed
    last_used_at: Mapped[float | None] = mapped_column(Float)
    last_step: Mapped[int | None] = mapped_column(BigInteger)  # TOTP: the newest time step accepted (no replay)


class RecoveryCodeRow(Base):
    """One single-use recovery code, kept as a keyed digest."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)


class GrantRow(Base):
    """A refresh-token family: everything issued from one authorization (or one code)."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str] = mapped_column(String(300), default="")
    auth_time: Mapped[float | None] = mapped_column(Float)
    acr: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    code_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    absolute_expires_at: Mapped[float] = mapped_column(Float)
    jkt: Mapped[str | None] = mapped_column(String(64))  # RFC 9449 §5: the key the family's refresh tokens need
    revoked_at: Mapped[float | None] = mapped_column(Float)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class RefreshTokenRow(Base):
    """One issuance within a grant: the refresh token (by digest) and the access token sent with it.

    ``digest`` is NULL when no refresh token was issued; the row still records the
    access token's ``jti`` so that revoking the grant can deny-list it.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    idle_expires_at: Mapped[float] = mapped_column(Float)
    at_jti: Mapped[str | None] = mapped_column(String(64))
    at_exp: Mapped[float | None] = mapped_column(Float)
    rotated_at: Mapped[float | None] = mapped_column(Float)
    successor_id: Mapped[str | None] = mapped_column(String(64))
    successor_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted response, grace only
    grace_uses: Mapped[int] = mapped_column(Integer, default=0)


class ConsentRow(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class DenyEntryRow(Base):
    """A deny-list entry; ``id`` doubles as the monotonic version resource servers follow."""

    __tablename__ = "deny_list"
    __table_args__ = (Index("ix_deny_kind_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # jti|subject|session|client|kid
    value: Mapped[str] = mapped_column(String(200))
    not_before: Mapped[float | None] = mapped_column(Float)  # subject/client: tokens with iat < this
    expires_at: Mapped[float] = mapped_column(Float, index=True)  # drop after: no token can match
    reason: Mapped[str] = mapped_column(String(300), default="")
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)
    removed_at: Mapped[float | None] = mapped_column(Float)


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(200), index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class MetaRow(Base):
    """Small key/value facts: the secret-digest pepper's check value, demo bootstrap marker."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SessionClientRow(Base):
    """A client a login session signed into with back-channel logout registered: whom to tell when it ends."""

    __tablename__ = "session_clients"

    sid: Mapped[str] = mapped_column(ForeignKey("login_sessions.sid", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class LogoutDeliveryRow(Base):
    """The back-channel logout outbox: one logout token owed to one client, written in the transaction that
    ended the session. ``next_attempt_at`` is also the claim's lease: a claimed row is due again when it
    passes, so a crashed sender's claims are retried; ``claim`` names the sender holding it."""

    __tablename__ = "logout_deliveries"
    __table_args__ = (Index("ix_logout_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the event id
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    sid: Mapped[str | None] = mapped_column(String(64))
    sub: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    claim: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)


class WebAuthnCredentialRow(Base):
    """A passkey (WebAuthn public key credential): only public material; the private key never leaves the
    authenticator. ``credential_id`` is the authenticator's id (unique across users, WebAuthn L3 §7.1 step 25)."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # ours: what forms name
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list] = mapped_column(JSON, default=list)
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)
