"""Second factors: TOTP authenticators, recovery codes, the deployment's policy, the factor service.

A factor kind other than TOTP (a passkey) is another :class:`idp.sessions.factors.model.Factor` ``kind`` in
the same store; the service counts any confirmed factor as "has a second factor".
"""
