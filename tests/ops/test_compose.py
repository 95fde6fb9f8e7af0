"""deploy/compose.yaml, parsed: the services Mana's Compose needs, and only variables the service reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mana_credits.config import Settings

ROOT = Path(__file__).parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return data


def mebibytes(limit: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([mg])", limit.lower()).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "g" else 1)


def test_services_and_their_order() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "mana-credits"}
    assert services["migrate"]["command"] == ["mana-credits", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    app = services["mana-credits"]
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["deploy"]["replicas"] == 2
    assert app["command"][:2] == ["mana-credits", "serve"]
    for service in services.values():
        assert mebibytes(service["mem_limit"]) > 0


def test_healthchecks_need_no_extra_tool() -> None:
    services = compose()["services"]
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD-SHELL"
    check = services["mana-credits"]["healthcheck"]
    assert check["test"] == ["CMD", "mana-credits", "healthcheck"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["mana-credits", "healthcheck"]' in dockerfile


def test_traefik_routes_credits_mana_how_to_the_service_port() -> None:
    app = compose()["services"]["mana-credits"]
    labels = dict(label.split("=", 1) for label in app["labels"])
    assert labels["traefik.enable"] == "true"
    rule = labels["traefik.http.routers.mana-credits.rule"]
    assert rule == "Host(`credits.mana.how`) && !PathPrefix(`/metrics`)"
    # The only router: nothing else serves /metrics on the public host.
    assert {name.split(".")[3] for name in labels if name.startswith("traefik.http.routers.")} == {
        "mana-credits"
    }
    assert labels["traefik.http.routers.mana-credits.tls"] == "true"
    port = labels["traefik.http.services.mana-credits.loadbalancer.server.port"]
    assert str(app["environment"]["PORT"]) == port


def test_environment_names_are_the_ones_the_service_reads() -> None:
    services = compose()["services"]
    read = set(Settings.model_fields)
    for name in ("migrate", "mana-credits"):
        env = services[name]["environment"]
        assert set(env) - {"TZ"} <= read, set(env) - read
        for required in ("DATABASE_URL", "MANA_SERVICE_KEY", "MANA_AUTH_URL", "TRUSTED_PROXIES", "BASE_URL"):
            assert env[required], required
    # Secrets come from the operator's environment, never written into the file.
    for secret in ("MANA_SERVICE_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        assert str(services["mana-credits"]["environment"][secret]).startswith("${")


def _metric_names(text: str) -> set[str]:
    return {name.removesuffix("_bucket") for name in re.findall(r"mana_credits_[a-z_]+", text)}


def test_dashboard_and_alerts_use_metrics_the_service_exports() -> None:
    from prometheus_client import REGISTRY

    import mana_credits.app  # noqa: F401  (defines every metric)

    exported = {
        name
        for collector in REGISTRY._collector_to_names  # the registry's own index of series names
        for name in REGISTRY._collector_to_names[collector]
    } | {"mana_credits_requests_total", "mana_credits_request_duration_seconds"}
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]
    alerts = " ".join(rule["expr"] for rule in rules)
    for name in _metric_names(exprs) | _metric_names(alerts):
        assert name in exported or f"{name}_bucket" in exported, name
    needs_a_person = {"CreditsRenewalJobStalled", "CreditsOutboxBacklogGrowing", "CreditsWebhookFailures"}
    assert {rule["alert"] for rule in rules} >= needs_a_person | {"CreditsAuditMismatch"}


def _labels() -> dict[str, str]:
    return dict(label.split("=", 1) for label in compose()["services"]["mana-credits"]["labels"])


def _seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s)", duration).groups()  # type: ignore[union-attr]
    return int(number) / (1000 if unit == "ms" else 1)


def test_traefik_holds_slow_bodies_and_bounds_requests_in_progress() -> None:
    labels = _labels()
    body, in_flight = labels["traefik.http.routers.mana-credits.middlewares"].split(",")
    assert labels[f"traefik.http.middlewares.{body}.buffering.maxrequestbodybytes"] == str(1024 * 1024)
    assert int(labels[f"traefik.http.middlewares.{in_flight}.inflightreq.amount"]) > 0


def test_traefik_drops_pooled_connections_before_the_server_closes_them() -> None:
    from mana_credits.server import HEADER_READ_MS

    transport = _labels()["traefik.http.services.mana-credits.loadbalancer.serverstransport"]
    name, provider = transport.split("@")
    assert provider == "file", transport
    dynamic = yaml.safe_load((ROOT / "deploy" / "traefik.yaml").read_text())
    timeouts = dynamic["http"]["serversTransports"][name]["forwardingTimeouts"]
    assert _seconds(timeouts["idleConnTimeout"]) < HEADER_READ_MS / 1000
    assert "responseHeaderTimeout" not in timeouts  # a 504 for a debit that may still commit


def test_the_ha_topology_points_every_replica_at_the_cluster() -> None:
    """deploy/ha: etcd, three Patroni nodes with synchronous replication, the replicas on all of them."""
    ha: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "ha" / "compose.yaml").read_text())
    services = ha["services"]
    assert set(services) == {"etcd", "pg1", "pg2", "pg3", "migrate", "mana-credits"}
    app = services["mana-credits"]
    url = app["environment"]["DATABASE_URL"].replace("${POSTGRES_PASSWORD}", "secret")
    assert "@pg1:5432,pg2:5432,pg3:5432/" in url and url.endswith("?target_session_attrs=read-write")
    settings = Settings(DATABASE_URL=url, MANA_CREDITS_ENV="development")
    settings.check_safe_to_start()  # a multi-host URL that asks for the writable node
    assert settings.standby_url is not None and "target_session_attrs=standby" in settings.standby_url
    assert app["labels"] == compose()["services"]["mana-credits"]["labels"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for node in ("pg1", "pg2", "pg3"):
        assert services[node]["environment"]["PATRONI_NAME"] == node
    patroni = yaml.safe_load((ROOT / "deploy" / "ha" / "patroni.yml").read_text())
    dcs = patroni["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["postgresql"]["use_pg_rewind"] is True
    # The image runs the Patroni that `make test-ha` measured (pyproject's `ha` group, pinned in uv.lock).
    pinned = re.findall(r'"patroni\[etcd3\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned and f'"patroni[etcd3]=={pinned[0]}"' in (ROOT / "deploy/ha/Dockerfile.patroni").read_text()
