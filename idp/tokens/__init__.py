"""Tokens: JWT rules, access and ID tokens, authorization codes, refresh families and their rotation."""
