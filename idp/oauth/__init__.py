"""The only package importing Authlib: the authorization server, its grants, and the Starlette adapter."""
