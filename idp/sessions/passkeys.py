"""Passkeys (WebAuthn Level 3 public key credentials): registration, sign-in, list, rename, remove.

The relying party is the issuer: the RP ID is the issuer's host, the only accepted origin is the issuer's
origin (WebAuthn L3 §7.1 steps 9 and 14). Each ceremony's challenge lives server-side in the ephemeral store
under a random ceremony id, bound to the browser that asked for it (the login session's ``sid`` when
registering, the pre-session cookie when signing in), and is taken once: a response is checked against a
challenge at most once, and not after :data:`CEREMONY_TTL`.

Passkeys are discoverable credentials (resident key required) created with user verification, so one alone
signs a person in: possession of the key plus the authenticator's PIN or biometric. As a second factor, after
a password, user verification is preferred, not required.

Blocking (SQL, the shared store): the HTTP layer calls this from a worker thread. Every change is audited.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse, WebAuthnException
from webauthn.helpers.parse_authentication_credential_json import parse_authentication_credential_json
from webauthn.helpers.parse_registration_credential_json import parse_registration_credential_json
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.clock import Clock
from idp.crypto import Digester, random_id
from idp.ephemeral import EphemeralStore
from idp.interaction import address_key

CEREMONY_TTL = 300.0  # seconds a challenge can be answered; the browser's timeout hint is the same
CEREMONIES_PER_ADDRESS = 100  # default: live ceremonies one address may hold (each holds a record)
MAX_PASSKEYS = 10  # per person
MAX_NAME = 64
MAX_RESPONSE = 16 * 1024  # bytes of a credential's JSON from the browser
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
_TRANSPORTS = {t.value for t in AuthenticatorTransport}
REGISTER, SIGN_IN = "register", "signin"


class Audit(Protocol):
    def record(self, action: str, *, actor: str = ..., subject: str | None = ..., **detail: Any) -> None: ...


class PasskeyError(Exception):
    """Shown to the person as is: nothing was changed and nobody signed in."""


class TooManyCeremonies(PasskeyError):
    """This address (or IPv6 /64) holds as many unfinished ceremonies as it may (``per_address``): 429."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many passkey requests. Please wait a moment and try again.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Passkey:
    id: str  # ours, what the account page's forms name
    user_id: str
    credential_id: bytes
    public_key: bytes  # COSE_Key, as the authenticator sent it
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool  # BE: the key may be synced to other devices (a "multi-device" credential)
    backed_up: bool  # BS: it is synced now
    aaguid: str
    name: str
    created_at: float
    last_used_at: float | None = None

    @property
    def amr(self) -> str:
        """RFC 8176 §2: ``hwk`` for a key bound to its hardware; ``swk`` for one that may be copied to other devices
        (backup eligible: a synced passkey lives in software key stores)."""
        return "swk" if self.backup_eligible else "hwk"


class PasskeyStore(Protocol):
    def add(self, passkey: Passkey) -> bool:
        """Insert; False when the credential id is registered already (to anyone)."""
        ...

    def get(self, passkey_id: str) -> Passkey | None: ...

    def by_credential_id(self, credential_id: bytes) -> Passkey | None: ...

    def list_for_user(self, user_id: str) -> list[Passkey]:
        """Oldest first."""
        ...

    def record_use(self, passkey_id: str, sign_count: int, backed_up: bool, at: float) -> bool:
        """Store a use in one conditional write: only while the stored count is below ``sign_count`` (or both are
        zero: an authenticator without a counter), so of two responses with one count at most one is stored.
        False when the count did not move forward."""
        ...

    def rename(self, user_id: str, passkey_id: str, name: str) -> bool: ...

    def delete(self, user_id: str, passkey_ids: list[str] | None = None) -> list[Passkey]:
        """Delete these passkeys of the user (all with None); returns those deleted."""
        ...


@dataclass(frozen=True)
class Ceremony:
    """What the browser gets to start a ceremony: its id (sent back with the response) and the options JSON
    for ``navigator.credentials.create`` / ``get`` (``PublicKeyCredentialCreationOptionsJSON``)."""

    id: str
    options: dict[str, Any]


@dataclass(frozen=True)
class SignedInWithPasskey:
    passkey: Passkey
    user_verified: bool

    @property
    def methods(self) -> tuple[str, ...]:
        """RFC 8176 values: the key (``hwk``/``swk``), and ``user`` when the authenticator verified the person
        (a PIN or biometric on the device: with the key, two factors, so ``amr_of`` adds ``mfa``)."""
        return (self.passkey.amr, "user") if self.user_verified else (self.passkey.amr,)


def clean_name(name: str) -> str:
    return " ".join(name.split())[:MAX_NAME] if name.isprintable() else ""


class Passkeys:
    def __init__(
        self,
        store: PasskeyStore,
        ephemeral: EphemeralStore,
        digester: Digester,
        clock: Clock,
        audit: Audit,
        *,
        issuer: str,
        rp_name: str,
        per_address: int = CEREMONIES_PER_ADDRESS,
    ) -> None:
        parts = urlsplit(issuer)
        self.store = store
        self._ephemeral = ephemeral
        self._digester = digester
        self._clock = clock
        self._audit = audit
        self.rp_id = parts.hostname or ""  # WebAuthn L3 §5.1.2: an RP ID is a domain, no scheme or port
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.rp_name = rp_name
        self.per_address = per_address

    # -- reading -------------------------------------------------------------------------
    def list(self, user_id: str) -> list[Passkey]:
        return self.store.list_for_user(user_id)

    def has_any(self, user_id: str) -> bool:
        return bool(self.store.list_for_user(user_id))

    # -- ceremonies ----------------------------------------------------------------------
    def _begin(self, kind: str, binding: str, challenge: bytes, user_id: str | None, ip: str) -> str:
        """Park the challenge. The records one address holds are bounded: a place is reserved (atomic: of
        concurrent requests at most the limit pass) before anything is written, and given back when the ceremony
        is answered; an abandoned one keeps its place until its window (of :data:`CEREMONY_TTL`) has passed."""
        window = int(self._clock.now() // CEREMONY_TTL)
        slot = f"passkey:ip:{address_key(ip)}:{window}"
        if self._ephemeral.reserve(slot, self.per_address, 2 * CEREMONY_TTL) is None:
            raise TooManyCeremonies(max(1, int((window + 1) * CEREMONY_TTL - self._clock.now())))
        ceremony_id = random_id(16)
        record = {"challenge": bytes_to_base64url(challenge), "binding": self._bind(binding), "user_id": user_id}
        record["slot"] = slot
        self._ephemeral.put(f"passkey:{kind}:{ceremony_id}", orjson.dumps(record), CEREMONY_TTL)
        return ceremony_id

    def _bind(self, binding: str) -> str:
        return self._digester.digest(f"passkey-ceremony:{binding}").hex()  # the pre-session cookie is a secret

    def _take(self, kind: str, ceremony_id: str, binding: str) -> tuple[bytes, str | None]:
        """The ceremony's challenge and user, once (WebAuthn L3 §13.4.3: a challenge is used only once)."""
        raw = self._ephemeral.take(f"passkey:{kind}:{ceremony_id}") if 0 < len(ceremony_id) <= 64 else None
        if raw is None:
            raise PasskeyError("This passkey request has expired. Please try again.")
        record = orjson.loads(raw)
        self._ephemeral.release(record["slot"])  # answered: its place is free again
        if not binding or not hmac.compare_digest(record["binding"], self._bind(binding)):
            raise PasskeyError("This passkey request was started elsewhere. Please try again.")
        return base64url_to_bytes(record["challenge"]), record["user_id"]

    # -- registration --------------------------------------------------------------------
    def registration_options(
        self, user_id: str, username: str, display_name: str, *, binding: str, ip: str = ""
    ) -> Ceremony:
        """Options for ``navigator.credentials.create``: a discoverable credential with user verification; the
        person's existing passkeys excluded (WebAuthn L3 §5.4: ``excludeCredentials``)."""
        existing = self.store.list_for_user(user_id)
        if len(existing) >= MAX_PASSKEYS:
            raise PasskeyError(f"You already have {MAX_PASSKEYS} passkeys. Remove one first.")
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=self.rp_name, user_name=username, user_display_name=display_name or username,
            user_id=user_id.encode(),  # the user handle: our random `sub`, no personal data (§14.6.1)
            timeout=int(CEREMONY_TTL * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
            ),
            exclude_credentials=[_descriptor(p) for p in existing],
            supported_pub_key_algs=ALGORITHMS,
        )  # fmt: skip
        ceremony_id = self._begin(REGISTER, binding, options.challenge, user_id, ip)
        return Ceremony(ceremony_id, json.loads(options_to_json(options)))

    def register(self, user_id: str, *, binding: str, ceremony_id: str, response: str, name: str, ip: str) -> Passkey:
        """Verify the authenticator's attestation (format ``none`` accepted: we ask for no attestation) and store
        the credential. The person must have been verified by the authenticator (UV flag, §7.1 step 17)."""
        challenge, ceremony_user = self._take(REGISTER, ceremony_id, binding)
        if ceremony_user != user_id:
            raise PasskeyError("This passkey request was started elsewhere. Please try again.")
        data = _credential_json(response)
        try:
            credential = parse_registration_credential_json(data)
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, require_user_verification=True, supported_pub_key_algs=ALGORITHMS,
            )  # fmt: skip
        except (InvalidRegistrationResponse, WebAuthnException, ValueError, KeyError, TypeError) as exc:
            self._audit.record("passkey.registration_failed", actor=user_id, subject=user_id, ip=ip,
                               reason=str(exc)[:200])  # fmt: skip
            raise PasskeyError("The passkey could not be verified. Please try again.") from None
        if len(self.store.list_for_user(user_id)) >= MAX_PASSKEYS:
            raise PasskeyError(f"You already have {MAX_PASSKEYS} passkeys. Remove one first.")
        transports = tuple(t.value for t in credential.response.transports or () if t.value in _TRANSPORTS)
        passkey = Passkey(
            id=random_id(12), user_id=user_id, credential_id=verified.credential_id,
            public_key=verified.credential_public_key, sign_count=verified.sign_count, transports=transports,
            backup_eligible=verified.credential_device_type == "multi_device",
            backed_up=verified.credential_backed_up, aaguid=verified.aaguid,
            name=clean_name(name) or "Passkey", created_at=self._clock.now(),
        )  # fmt: skip
        if not self.store.add(passkey):  # §7.1 step 26: a credential id registered already is refused
            raise PasskeyError("This passkey is registered already.")
        self._audit.record("passkey.added", actor=user_id, subject=user_id, passkey_id=passkey.id, ip=ip,
                           backup_eligible=passkey.backup_eligible, aaguid=passkey.aaguid)  # fmt: skip
        return passkey

    # -- authentication ------------------------------------------------------------------
    def authentication_options(self, *, binding: str, user_id: str | None = None, ip: str = "") -> Ceremony:
        """Options for ``navigator.credentials.get``. Without ``user_id`` (passwordless, conditional UI): no
        ``allowCredentials``, the authenticator offers its discoverable credentials, user verification required.
        With it (a second factor after the password): that person's passkeys, user verification preferred."""
        allow = [_descriptor(p) for p in self.store.list_for_user(user_id)] if user_id else None
        uv = UserVerificationRequirement.PREFERRED if user_id else UserVerificationRequirement.REQUIRED
        options = generate_authentication_options(
            rp_id=self.rp_id, timeout=int(CEREMONY_TTL * 1000), allow_credentials=allow, user_verification=uv
        )
        ceremony_id = self._begin(SIGN_IN, binding, options.challenge, user_id, ip)
        return Ceremony(ceremony_id, json.loads(options_to_json(options)))

    def authenticate(self, *, binding: str, ceremony_id: str, response: str, ip: str) -> SignedInWithPasskey:
        """Verify an assertion (WebAuthn L3 §7.2) against the ceremony started with :meth:`authentication_options`.

        Refused: an unknown credential, another person's credential for a second-factor ceremony, a user handle
        that is not the credential's (or none on a passwordless ceremony), no user verification on a passwordless
        ceremony, a bad signature, a changed backup eligibility (§7.2 step 18) and a signature counter that did
        not move forward (§7.2 step 21: a sign of a cloned authenticator; audited as
        ``passkey.sign_count_regressed``)."""
        challenge, ceremony_user = self._take(SIGN_IN, ceremony_id, binding)
        data = _credential_json(response)
        try:
            credential = parse_authentication_credential_json(data)
        except (WebAuthnException, ValueError, KeyError, TypeError):
            raise PasskeyError("The passkey's answer could not be read.") from None
        passkey = self.store.by_credential_id(credential.raw_id)
        if passkey is None or (ceremony_user is not None and passkey.user_id != ceremony_user):
            self._audit.record("passkey.failed", ip=ip, reason="unknown credential")
            raise PasskeyError("This passkey is not registered here.")
        handle = credential.response.user_handle
        # §7.2 step 6: with nobody identified before the ceremony (passwordless), the handle must be there
        if (handle is None and ceremony_user is None) or (
            handle is not None and not hmac.compare_digest(handle, passkey.user_id.encode())
        ):
            self._audit.record("passkey.failed", subject=passkey.user_id, ip=ip, reason="user handle mismatch")
            raise PasskeyError("This passkey is not registered here.")
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, credential_public_key=passkey.public_key,
                credential_current_sign_count=0,  # the counter is checked below, after the signature
                require_user_verification=ceremony_user is None,  # §7.2 step 16: passwordless needs UV
            )  # fmt: skip
        except (InvalidAuthenticationResponse, WebAuthnException, ValueError, KeyError, TypeError) as exc:
            self._audit.record("passkey.failed", subject=passkey.user_id, ip=ip, passkey_id=passkey.id,
                               reason=str(exc)[:200])  # fmt: skip
            raise PasskeyError("The passkey could not be verified. Please try again.") from None
        eligible = verified.credential_device_type == "multi_device"
        if eligible != passkey.backup_eligible:  # WebAuthn L3 §7.2 step 18: BE never changes for a credential
            self._audit.record("passkey.failed", subject=passkey.user_id, ip=ip, passkey_id=passkey.id,
                               reason="backup eligibility changed")  # fmt: skip
            raise PasskeyError("The passkey could not be verified. Please try again.")
        now = self._clock.now()
        count = verified.new_sign_count
        # WebAuthn L3 §7.2 step 21: a counter that did not grow means two copies of the key may exist
        regressed = bool(count or passkey.sign_count) and count <= passkey.sign_count
        if regressed or not self.store.record_use(passkey.id, count, verified.credential_backed_up, now):
            self._audit.record("passkey.sign_count_regressed", subject=passkey.user_id, ip=ip,
                               passkey_id=passkey.id, stored=passkey.sign_count, received=count)  # fmt: skip
            raise PasskeyError("This passkey could not be used. It may have been copied; contact support.")
        used = replace(passkey, sign_count=count, backed_up=verified.credential_backed_up, last_used_at=now)
        return SignedInWithPasskey(used, verified.user_verified)

    # -- management ----------------------------------------------------------------------
    def rename(self, user_id: str, passkey_id: str, name: str, *, ip: str = "") -> bool:
        name = clean_name(name)
        if not name or not self.store.rename(user_id, passkey_id, name):
            return False
        self._audit.record("passkey.renamed", actor=user_id, subject=user_id, passkey_id=passkey_id, ip=ip)
        return True

    def remove(self, user_id: str, passkey_id: str, *, actor: str | None = None, ip: str = "") -> bool:
        removed = self.store.delete(user_id, [passkey_id])
        if removed:
            self._audit.record("passkey.removed", actor=actor or user_id, subject=user_id, passkey_id=passkey_id,
                               ip=ip)  # fmt: skip
        return bool(removed)

    def reset(self, user_id: str, *, actor: str, reason: str = "") -> int:
        """An operator's reset: every passkey of the person; returns how many."""
        removed = self.store.delete(user_id)
        if removed:
            self._audit.record("passkey.reset", actor=actor, subject=user_id, passkeys=len(removed), reason=reason)
        return len(removed)


def _credential_json(response: str) -> dict[str, Any]:
    """The browser's ``PublicKeyCredential`` JSON: an object, bounded in size (and, by orjson, in depth)."""
    try:
        data = orjson.loads(response) if len(response) <= MAX_RESPONSE else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise PasskeyError("The passkey's answer could not be read.")
    return data


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=passkey.credential_id, transports=[AuthenticatorTransport(t) for t in passkey.transports]
    )
