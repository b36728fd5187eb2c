"""People: password hashing (Argon2id) and policy, the user directory, login throttling, and UserAdmin
(the operator's use cases)."""
