"""REST endpoints. `ROUTES` is the one route table; the OpenAPI document is built from it.

Route names (`area.action`) key the rate-limit table in gateway/ratelimit.py.
"""
from gateway.health import HealthzHandler, MetricsHandler, ReadyzHandler
from gateway.routing import route
from handlers import auth, users

ROUTES = [
    route("/healthz", HealthzHandler, "health.healthz"),
    route("/readyz", ReadyzHandler, "health.readyz"),
    route("/metrics", MetricsHandler, "health.metrics"),
    route("/v1/auth/dev-login", auth.DevLoginHandler, "auth.dev_login"),
    route("/v1/users/me", users.MeHandler, "users.me"),
]
