"""Names, labels and aliases: no engine needed."""

from __future__ import annotations

import os
import re

import pytest

from pytest_dockernet import InvalidAliasError, RunIdentity, new_run_id
from pytest_dockernet.engine.naming import (
    HOST_ENV,
    LABEL_HOST,
    LABEL_KEEP,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_ROOT_PID,
    LABEL_ROOT_START,
    LABEL_RUN,
    LABEL_TEST,
    LABEL_WORKER,
    MAX_NAME_LENGTH,
    check_prefix,
    container_name,
    normalize_aliases,
    sanitize_label_value,
    sanitize_name_part,
    this_host,
)
from pytest_dockernet.engine.processes import ProcessRef

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def test_run_ids_differ_between_runs_started_together():
    assert len({new_run_id() for _ in range(1000)}) == 1000


def test_network_names_follow_prefix_run_worker_counter():
    identity = RunIdentity(run="abcd1234", worker="gw1", prefix="ci")
    assert [identity.next_network_name() for _ in range(3)] == [
        "ci-abcd1234-gw1-1",
        "ci-abcd1234-gw1-2",
        "ci-abcd1234-gw1-3",
    ]


def test_two_workers_of_one_run_never_share_a_name():
    gw0, gw1 = RunIdentity(run="r", worker="gw0"), RunIdentity(run="r", worker="gw1")
    names = {gw0.next_network_name() for _ in range(50)} | {gw1.next_network_name() for _ in range(50)}
    assert len(names) == 100


@pytest.mark.parametrize(
    "hostile",
    ["test_x[a/b]", "../../etc", "name with spaces", "x" * 300, "ünïcødé", "-leading", "a;rm -rf /", ""],
)
def test_sanitized_parts_are_valid_docker_names(hostile):
    part = sanitize_name_part(hostile, 40)
    assert DOCKER_NAME.match("n-" + part)
    assert len(part) <= 40


def test_different_inputs_stay_different_after_sanitizing():
    assert sanitize_name_part("a/b") != sanitize_name_part("a:b")
    assert sanitize_name_part("x" * 100, 20) != sanitize_name_part("x" * 101, 20)
    assert sanitize_name_part("plain") == "plain"


def test_container_names_stay_within_the_length_limit():
    name = container_name("dockernet-abcd1234-gw0-17", "a-very-long-alias-" * 5)
    assert len(name) <= MAX_NAME_LENGTH
    assert name.startswith("dockernet-abcd1234-gw0-17-")
    assert DOCKER_NAME.match(name)


def test_labels_carry_run_worker_pid_host_and_test():
    identity = RunIdentity(run="r1", worker="gw3", pid=42, host="box")
    labels = identity.labels("tests/test_a.py::test_b[\x00evil]", {LABEL_RUN: "forged", "team": "x"})
    assert labels[LABEL_RUN] == "r1"
    assert labels[LABEL_WORKER] == "gw3"
    assert labels[LABEL_PID] == "42"
    assert labels[LABEL_HOST] == "box"
    assert labels[LABEL_TEST] == "tests/test_a.py::test_b[?evil]"
    assert labels["team"] == "x"
    assert LABEL_KEEP not in labels
    assert RunIdentity(run="r", keep=True).labels()[LABEL_KEEP] == "1"


def test_labels_record_start_times_so_a_recycled_pid_is_not_the_process():
    identity = RunIdentity(run="r1")
    labels = identity.labels()
    assert labels[LABEL_PID] == labels[LABEL_ROOT_PID] == str(os.getpid())
    assert float(labels[LABEL_PID_START]) == pytest.approx(ProcessRef.current().started, abs=0.05)
    assert labels[LABEL_ROOT_START] == labels[LABEL_PID_START]
    assert identity.root.alive()
    recycled = ProcessRef(os.getpid(), float(labels[LABEL_PID_START]) - 3600)
    assert not recycled.alive(), "same pid, another start time: not the recorded process"


def test_label_lists_and_extra_labels_as_docker_py_takes_them():
    identity = RunIdentity(run="r1", extra_labels={"ci.job": "42"})
    labels = identity.labels(extra=["flag", "other"])
    assert (labels["flag"], labels["other"], labels["ci.job"]) == ("", "", "42")
    assert identity.labels(extra={"ci.job": "43"})["ci.job"] == "43"


def test_the_host_name_can_be_set_for_hosts_that_share_one(monkeypatch):
    monkeypatch.setenv(HOST_ENV, "runner-7")
    assert this_host() == "runner-7"
    assert RunIdentity(run="r1").labels()[LABEL_HOST] == "runner-7"


def test_long_label_values_are_bounded():
    assert len(sanitize_label_value("t" * 10_000)) <= 256


@pytest.mark.parametrize("alias", ["web", "db-1", "my_db", "a.b.c", "x" * 63])
def test_valid_aliases(alias):
    assert normalize_aliases(alias) == [alias]


@pytest.mark.parametrize("alias", ["", "-web", "web-", "_web", "web_", "we b", "x" * 64, "a..b", "ü"])
def test_invalid_aliases_name_the_alias(alias):
    with pytest.raises(InvalidAliasError, match=re.escape(repr(alias))):
        normalize_aliases(alias)


def test_alias_list_and_none():
    assert normalize_aliases(["a", "b"]) == ["a", "b"]
    assert normalize_aliases(None) == []
    with pytest.raises(InvalidAliasError, match="must be a string"):
        normalize_aliases([1])  # type: ignore[list-item]


@pytest.mark.parametrize("prefix", ["", "-x", "a b", "x" * 17, "a/b"])
def test_bad_prefixes_are_explained(prefix):
    assert check_prefix(prefix)


def test_good_prefix():
    assert check_prefix("ci_job.7-x") is None
