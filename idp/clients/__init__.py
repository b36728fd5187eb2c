"""Client registrations: model, redirect-URI rules, registry (create, authenticate, rotate)."""
