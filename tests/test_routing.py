"""The gateway's route table (gateway/routing.py LiteralPaths) finds, for any path, the route
Tornado's own rules would: the literal one first, else the first declared regex that matches."""
from types import SimpleNamespace

from gateway.routing import LiteralPaths
from handlers import ROUTES

SAMPLES = {int: ("7", "0", "99999999999999999999"), str: ("abc", "me", "7")}


class Recorder:
    """Stands in for the application: says which route was chosen, with which arguments."""

    def get_handler_delegate(self, request, target, target_kwargs=None, path_args=None,
                             path_kwargs=None):
        return target_kwargs["route_template"], path_kwargs or {}


def tornado_choice(path: str):
    """What the application's rules chose before the table filed parametrised routes: the
    literal route, else every regex rule in declaration order."""
    request = SimpleNamespace(path=path)
    for route in ROUTES:
        if not route.params and route.template == path:
            return route.template, {}
    for route in ROUTES:
        params = route.spec().matcher.match(request)
        if params is not None:
            return route.template, params["path_kwargs"]
    return None


def sample_paths() -> list[str]:
    paths = ["/", "/healthz", "/v1", "/v1/", "/v1/no-such-thing/7", "/v1/users/me/x/y/z"]
    for route in ROUTES:
        for n in range(3):
            path = route.template
            for name, kind in route.params.items():
                path = path.replace("{" + name + (":int" if kind is int else "") + "}",
                                    SAMPLES[kind][n])
                path = path.replace("{" + name + ":str}", SAMPLES[kind][n])
            paths += [path, path + "/extra", path.rsplit("/", 1)[0]]
    return paths


def test_every_path_finds_the_route_tornado_would_choose():
    table = LiteralPaths(ROUTES)
    table.application = Recorder()
    paths = sample_paths()
    assert len(paths) > 3 * len(ROUTES)
    for path in paths:
        assert table.find_handler(SimpleNamespace(path=path)) == tornado_choice(path), path


def test_a_parametrised_path_tries_only_its_section():
    table = LiteralPaths(ROUTES)
    names = [spec.name for spec in table.candidates("/v1/services/12/slots")]
    assert "booking.slots" in names
    assert all(name.split(".")[0] in ("booking", "reviews", "services") for name in names), names
    assert len(names) < 10
