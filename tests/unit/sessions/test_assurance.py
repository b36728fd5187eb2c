"""amr (RFC 8176) from the methods used, and the acr values: satisfied, chosen, advertised."""

from __future__ import annotations

from idp.sessions.assurance import (
    ACR_MFA,
    ACR_SFA,
    SUPPORTED,
    acr_for,
    amr_of,
    parse_acr_values,
    preferred_met,
    satisfies,
)


def test_mfa_when_two_kinds_of_factor() -> None:
    assert amr_of(["pwd"]) == ("pwd",)
    assert amr_of(["pwd", "otp"]) == ("pwd", "otp", "mfa")
    assert amr_of(["hwk", "user"]) == ("hwk", "user", "mfa")
    assert amr_of(["otp", "otp", "mfa"]) == ("otp",)  # one kind twice is one factor; mfa is derived, never kept
    assert amr_of(["pwd", "pin"]) == ("pwd", "pin")  # two things known: still one kind


def test_acr_reflects_what_happened() -> None:
    assert acr_for(["pwd"]) == ACR_SFA
    assert acr_for(["pwd", "otp", "mfa"]) == ACR_MFA
    assert acr_for(["pwd"], [ACR_MFA]) == ACR_SFA  # asked for, not met: the truth
    assert acr_for(["pwd", "otp", "mfa"], [ACR_SFA, ACR_MFA]) == ACR_SFA  # the first requested value met
    assert acr_for(["pwd", "otp", "mfa"], ["urn:unknown", ACR_MFA]) == ACR_MFA


def test_satisfied_and_preferred() -> None:
    assert satisfies(ACR_SFA, ["pwd"]) and not satisfies(ACR_MFA, ["pwd"]) and not satisfies("x", ["pwd"])
    assert not satisfies("phr", ["hwk", "user", "mfa"])  # only the values advertised count
    assert preferred_met([], ["pwd"]) and preferred_met(["urn:unknown"], ["pwd"])
    assert not preferred_met([ACR_MFA, ACR_SFA], ["pwd"]) and preferred_met([ACR_SFA, ACR_MFA], ["pwd"])


def test_acr_values_are_bounded_and_deduplicated() -> None:
    assert parse_acr_values(f"{ACR_MFA} {ACR_MFA}  {ACR_SFA}") == (ACR_MFA, ACR_SFA)
    assert len(parse_acr_values(" ".join(f"v{i}" for i in range(100)))) == 8
    assert SUPPORTED == (ACR_SFA, ACR_MFA)
