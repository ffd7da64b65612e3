"""docs/deploy.md's files stay true: deploy/policy.toml loads, every `REELM_` variable that
deploy/compose.yaml sets is a real setting and parses, and every command is a real `reelm` one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from reelm.cli import main
from reelm.config import Settings
from reelm.residency.policy import load_policy

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def secrets() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    return {k: v for k, v in pairs}


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:?}` (must be set) and `${VAR:-default}`, from env.example."""

    def one(m: re.Match[str]) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        assert op == ":-", f"{name} is not in deploy/env.example"
        return default

    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", one, value)


def reelm_services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return {k: v for k, v in compose["services"].items() if v.get("image") == "reelm:latest"}


def test_the_deploy_policy_loads_with_a_database_queue_and_blob_folder_per_region() -> None:
    policy = load_policy(DEPLOY / "policy.toml")
    assert set(policy.regions) == {"us", "sg"}
    for name, region in policy.regions.items():
        assert region.database_url.startswith("postgresql+psycopg://")
        assert region.redis_url == f"redis://{name}-redis:6379/0"
        assert region.blob_store == f"/srv/reelm/{name}/blobs"
    assert policy.region_for("US") == "us"
    assert policy.region_for("DE") == "sg"


@pytest.mark.parametrize("service", sorted(reelm_services()))
def test_each_reelm_service_sets_only_real_settings_that_parse(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = reelm_services()[service]
    env = {k: substitute(str(v), secrets()) for k, v in spec["environment"].items()}
    unknown = [
        k
        for k in env
        if k != "FORWARDED_ALLOW_IPS"  # uvicorn's own (docs/deploy.md)
        and k.removeprefix("REELM_").lower() not in Settings.model_fields
    ]
    assert not unknown, f"{service} sets variables that are no setting: {unknown}"
    for k in list(Settings.model_fields):
        monkeypatch.delenv(f"REELM_{k.upper()}", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    policy = load_policy(DEPLOY / "policy.toml")
    assert set(settings.region_database_urls) == set(policy.regions)
    assert settings.region_redis_urls == {n: r.redis_url for n, r in policy.regions.items()}
    assert settings.login_throttle_url == "redis://edge-redis:6379/0"
    assert settings.cookie_secure
    assert not settings.jobs_immediate
    command = spec["command"]
    assert command[0] == "reelm"
    assert command[1] in main.commands, f"{service}: no command reelm {command[1]}"
    names = {p for param in main.commands[command[1]].params for p in param.opts}
    flags = [a for a in command[2:] if a.startswith("--")]
    assert set(flags) <= names, f"{service}: unknown options {set(flags) - names}"
    if service == "web":
        assert settings.web_workers == 4
