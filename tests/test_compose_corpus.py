"""Compose files written the way public projects write them: each is read and its plan checked.

The files are in ``compose_corpus/`` (with the ``.env``, env files, secrets and configs they
name). Nothing here starts a container: ``test_compose_stacks.py`` does, for real.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_dockernet.core.compose import ComposeFile, load

CORPUS = Path(__file__).parent / "compose_corpus"
MiB = 1024 * 1024


def opts(plan: ComposeFile, service: str) -> dict:
    return plan.services[service].options


def mounts(plan: ComposeFile, service: str) -> list[tuple[str, str, str, bool]]:
    return [(m.kind, m.source, m.target, m.read_only) for m in plan.services[service].mounts]


def check_wordpress(plan: ComposeFile) -> None:
    assert opts(plan, "db")["restart_policy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert plan.services["db"].command == ["--default-authentication-plugin=mysql_native_password"]
    assert plan.services["wordpress"].ports == {"80/tcp": 80}
    assert set(plan.volumes) == {"db_data", "wp_data"}
    assert ("volume", "db_data", "/var/lib/mysql", False) in mounts(plan, "db")


def check_django(plan: ComposeFile) -> None:
    # ${POSTGRES_VERSION:-13} and ${WEB_PORT} come from the .env next to the file.
    assert plan.services["db"].image == "postgres:15"
    assert plan.services["web"].ports == {"8000/tcp": 8088}
    assert plan.services["web"].build is not None
    assert plan.services["web"].build.context == CORPUS
    assert plan.services["web"].depends_on == {"db": "service_healthy"}
    assert plan.services["db"].healthcheck == {
        "test": ["CMD-SHELL", "pg_isready -U postgres"],
        "interval": 5 * 10**9,
        "timeout": 5 * 10**9,
        "retries": 5,
    }
    assert ("bind", str(CORPUS / "data/db"), "/var/lib/postgresql/data", False) in mounts(plan, "db")


def check_flask(plan: ComposeFile) -> None:
    build = plan.services["web"].build
    assert build is not None
    assert (build.dockerfile, build.args, build.target) == (
        "Dockerfile",
        {"PYTHON_VERSION": "3.12"},
        "runtime",
    )
    assert plan.services["web"].ports == {"5000/tcp": ("127.0.0.1", 5000)}
    assert plan.services["redis"].aliases == ["redis", "redis-cache"]
    assert opts(plan, "redis")["stop_signal"] == "SIGINT"


def check_secrets(plan: ComposeFile) -> None:
    assert mounts(plan, "db") == [
        ("bind", str(CORPUS / "secrets/db_password.txt"), "/run/secrets/db_password", True),
        ("bind", str(CORPUS / "secrets/db_root.txt"), "/run/secrets/root_password", True),
    ]


def check_configs(plan: ComposeFile) -> None:
    assert mounts(plan, "proxy") == [
        ("bind", str(CORPUS / "nginx.conf"), "/etc/nginx/nginx.conf", True),
        ("bind", str(CORPUS / "nginx.conf"), "/site", True),
    ]


def check_traefik(plan: ComposeFile) -> None:
    assert opts(plan, "reverse-proxy")["labels"]["traefik.enable"] == "true"
    assert opts(plan, "whoami")["labels"] == {"traefik.http.routers.whoami.rule": "Host(`whoami.localhost`)"}
    assert opts(plan, "reverse-proxy")["restart_policy"]["Name"] == "unless-stopped"
    assert plan.services["reverse-proxy"].command == ["--api.insecure=true", "--providers.docker"]


def check_prometheus(plan: ComposeFile) -> None:
    log_config = opts(plan, "grafana")["log_config"]
    assert (log_config["Type"], log_config["Config"]) == ("json-file", {"max-size": "10m", "max-file": "3"})
    assert opts(plan, "grafana")["user"] == "472"
    assert plan.services["prometheus"].aliases == ["prometheus"], (
        "container_name equal to the name adds nothing"
    )


def check_kafka(plan: ComposeFile) -> None:
    assert opts(plan, "broker")["hostname"] == "broker"
    assert [dict(u) for u in opts(plan, "broker")["ulimits"]] == [
        {"Name": "nofile", "Soft": 65536, "Hard": 65536}
    ]
    assert plan.services["broker"].depends_on == {"zookeeper": "service_started"}
    assert plan.services["broker"].environment["KAFKA_BROKER_ID"] == "1"


def check_mongo(plan: ComposeFile) -> None:
    assert opts(plan, "mongo")["tmpfs"] == {"/tmp": ""}
    assert plan.services["mongo-express"].depends_on == {"mongo": "service_started"}


def check_elastic(plan: ComposeFile) -> None:
    es = opts(plan, "es01")
    assert es["mem_limit"] == 1024 * MiB
    assert es["cap_add"] == ["IPC_LOCK"]
    assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in es["ulimits"]) == [
        ("memlock", -1, -1),
        ("nofile", 65536, 65536),
    ]
    assert plan.volumes["esdata"]["driver"] == "local"


def check_deploy(plan: ComposeFile) -> None:
    api = opts(plan, "api")
    assert (api["nano_cpus"], api["mem_limit"], api["pids_limit"]) == (500_000_000, 256 * MiB, 100)
    assert api["mem_reservation"] == 64 * MiB
    assert api["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert api["platform"] == "linux/amd64"


def check_extends(plan: ComposeFile) -> None:
    worker = plan.services["worker"]
    assert (worker.image, worker.command, worker.environment) == (
        "example/base:2",
        ["celery", "worker"],
        {"LOG_LEVEL": "debug"},
    )
    assert opts(plan, "worker")["restart_policy"]["Name"] == "on-failure"


def check_include(plan: ComposeFile) -> None:
    assert set(plan.services) == {"base", "web"}
    assert plan.services["web"].depends_on == {"base": "service_started"}


def check_networks(plan: ComposeFile) -> None:
    assert set(plan.networks) == {"frontend", "backend"}
    backend = plan.networks["backend"]
    assert (backend.internal, backend.options, backend.labels) == (
        True,
        {"com.docker.network.driver.mtu": "1400"},
        {"team": "data"},
    )
    assert plan.services["app"].networks == {
        "frontend": {"aliases": ["application"], "ipv4_address": None},
        "backend": {"aliases": [], "ipv4_address": None},
    }
    assert plan.services["db"].networks["backend"]["aliases"] == ["database"]


def check_static_ip(plan: ComposeFile) -> None:
    assert {name: str(address) for name, address in plan.addresses("replication").items()} == {
        "primary": "10.199.250.10",
        "replica": "10.199.250.11",
    }


def check_healthchecks(plan: ComposeFile) -> None:
    assert plan.services["redis"].healthcheck == {
        "test": ["CMD-SHELL", "redis-cli ping"],
        "interval": 10**9,
        "timeout": 3 * 10**9,
        "retries": 30,
        "start_period": 90 * 10**9,
    }
    assert plan.services["app"].healthcheck == {"test": ["NONE"]}
    assert plan.services["app"].depends_on == {
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }


def check_hardening(plan: ComposeFile) -> None:
    app = opts(plan, "app")
    assert (app["read_only"], app["user"], app["working_dir"], app["init"]) == (
        True,
        "1000:1000",
        "/app",
        True,
    )
    assert (app["cap_drop"], app["cap_add"]) == (["ALL"], ["NET_BIND_SERVICE"])
    assert app["security_opt"] == ["no-new-privileges:true"]
    assert app["tmpfs"] == {"/tmp": "size=64m"}
    assert (app["pids_limit"], app["stop_timeout"], app["shm_size"]) == (50, 90, 256 * MiB)
    assert app["sysctls"] == {"net.core.somaxconn": "1024"}


def check_env_files(plan: ComposeFile) -> None:
    assert plan.services["app"].environment == {
        "FROM_FILE": "1",
        "QUOTED": "with spaces",
        "FROM_COMPOSE": "yes",
        "DEFAULTED": "fallback",
    }


def check_long_syntax(plan: ComposeFile) -> None:
    web = plan.services["web"]
    assert web.ports == {"80/tcp": 8000, "9000/udp": ("127.0.0.1", 9000)}
    assert mounts(plan, "web") == [
        ("bind", str(CORPUS / "static"), "/usr/share/nginx/html", True),
        ("volume", "cache", "/var/cache/nginx", False),
        ("tmpfs", "", "/run", False),
        ("volume", "", "/anonymous", False),
    ]


def check_anchors(plan: ComposeFile) -> None:
    assert plan.services["worker"].environment == {"TZ": "UTC", "QUEUE": "default"}
    assert opts(plan, "api")["labels"] == {"com.example.stack": "demo"}
    assert opts(plan, "api")["restart_policy"]["Name"] == "unless-stopped"


def check_hosts_dns(plan: ComposeFile) -> None:
    app = opts(plan, "app")
    assert (app["hostname"], app["domainname"]) == ("app01", "example.test")
    assert sorted(app["extra_hosts"]) == ["host.docker.internal:host-gateway", "legacy:10.0.0.5"]
    assert (app["dns"], app["dns_search"], app["tty"], app["stdin_open"]) == (
        ["127.0.0.1"],
        ["example.test"],
        True,
        True,
    )
    assert plan.services["app"].entrypoint == ["/docker-entrypoint.sh"]


def check_gitlab_runner(plan: ComposeFile) -> None:
    runner = opts(plan, "runner")
    assert (runner["privileged"], runner["stop_timeout"], runner["log_config"]["Type"]) == (True, 30, "local")


def check_minio(plan: ComposeFile) -> None:
    for name in ("minio1", "minio2"):
        assert plan.services[name].command == ["server", "--console-address", ":9001", "/data"]
        assert plan.services[name].healthcheck is not None
    assert set(plan.volumes) == {"data1", "data2"}


def check_rabbitmq(plan: ComposeFile) -> None:
    rabbit = opts(plan, "rabbitmq")
    assert (rabbit["nano_cpus"], rabbit["mem_reservation"]) == (1_500_000_000, 128 * MiB)
    assert set(plan.networks) == {"messaging"}, "the network's name: is the plugin's to choose"


def check_common_base(plan: ComposeFile) -> None:
    assert plan.services["base"].environment == {"LOG_LEVEL": "info"}


CHECKS: dict[str, Callable[[ComposeFile], None]] = {
    "anchors.yaml": check_anchors,
    "common-base.yaml": check_common_base,
    "configs.yaml": check_configs,
    "deploy-resources.yaml": check_deploy,
    "django-postgres.yaml": check_django,
    "elastic.yaml": check_elastic,
    "env-files.yaml": check_env_files,
    "extends.yaml": check_extends,
    "flask-redis.yaml": check_flask,
    "gitlab-runner.yaml": check_gitlab_runner,
    "hardening.yaml": check_hardening,
    "healthchecks.yaml": check_healthchecks,
    "hosts-dns.yaml": check_hosts_dns,
    "include.yaml": check_include,
    "kafka.yaml": check_kafka,
    "long-syntax.yaml": check_long_syntax,
    "minio.yaml": check_minio,
    "mongo-express.yaml": check_mongo,
    "networks.yaml": check_networks,
    "prometheus-grafana.yaml": check_prometheus,
    "rabbitmq.yaml": check_rabbitmq,
    "secrets.yaml": check_secrets,
    "static-ip.yaml": check_static_ip,
    "traefik.yaml": check_traefik,
    "wordpress-mysql.yaml": check_wordpress,
}


def test_every_file_of_the_corpus_is_checked():
    assert sorted(path.name for path in CORPUS.glob("*.yaml") if path.name != "profiles.yaml") == sorted(
        CHECKS
    )
    assert len(CHECKS) >= 25


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_compose_file_from_the_wild_is_read_and_planned(name, monkeypatch):
    monkeypatch.delenv("POSTGRES_VERSION", raising=False)
    monkeypatch.delenv("WEB_PORT", raising=False)
    CHECKS[name](load(CORPUS / name))


@pytest.mark.parametrize(
    ("profiles", "services"),
    [((), ["app"]), (["debug"], ["app", "debug-tools", "mailhog"]), (["dev"], ["app", "mailhog"])],
)
def test_profiles_choose_the_services(profiles, services):
    assert sorted(load(CORPUS / "profiles.yaml", profiles=profiles).services) == services


def test_the_environment_given_wins_over_the_env_file_and_later_files_override(tmp_path):
    plan = load(CORPUS / "django-postgres.yaml", environment={"POSTGRES_VERSION": "16", "WEB_PORT": "9999"})
    assert plan.services["db"].image == "postgres:16"
    override = tmp_path / "override.yaml"
    override.write_text("services:\n  db:\n    image: postgres:17\n")
    assert load([CORPUS / "django-postgres.yaml", override]).services["db"].image == "postgres:17"


def test_the_readme_table_names_every_key_the_mapping_knows():
    from pytest_dockernet.core import compose_model

    readme = (Path(__file__).parent.parent / "README.rst").read_text()
    table = readme[readme.index("What each key of the compose specification does here:") :]
    table = table[: table.index("A file is read within bounds")]
    keys = set(compose_model.DIRECT) | set(compose_model.BYTES) | compose_model.MAPPED
    keys |= set(compose_model.ACCEPTED) | set(compose_model.REFUSED)
    assert sorted(key for key in keys if f"``{key}``" not in table) == []
