"""The IdP's own login session (opaque cookie -> server-side record): sign-in, sign-out, CSRF, consents,
the account page's use cases."""
