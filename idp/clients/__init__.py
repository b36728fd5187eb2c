"""Client registrations: model, redirect-URI rules, registry (create, authenticate, rotate), the per-client
origin rule, the follower of other workers' changes, and ClientAdmin (the operator's use cases)."""
