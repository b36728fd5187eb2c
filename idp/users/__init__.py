"""People: password hashing (Argon2id) and the user directory."""
