"""The admin API under /admin: JSON in and out, RFC 7807 problems, client-credentials tokens with idp:admin."""
