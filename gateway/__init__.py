"""The gateway runtime: application factory, routing, request handling, auth, errors, rate
limits, metrics and shutdown. Nothing domain-specific lives here; handlers/ holds endpoints."""
