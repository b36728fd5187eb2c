"""The IdP's own login session (opaque cookie -> server-side record), CSRF, consents."""
