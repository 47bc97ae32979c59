"""The private state directory that holds the lock files: no engine needed."""

from __future__ import annotations

import os
import stat

import pytest

from pytest_dockernet import DockernetError
from pytest_dockernet.engine.statedir import STATE_DIR_ENV, default_state_dir, ensure_private_dir, lock_path


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_created_private(tmp_path):
    state = ensure_private_dir(tmp_path / "state")
    assert mode(state) == 0o700


def test_an_existing_readable_directory_of_ours_is_tightened(tmp_path):
    readable = tmp_path / "readable"
    readable.mkdir()
    os.chmod(readable, 0o755)
    ensure_private_dir(readable)
    assert mode(readable) == 0o700


@pytest.mark.parametrize("loose_mode", [0o777, 0o770, 0o1777])
def test_a_directory_others_may_write_to_is_refused_not_repaired(tmp_path, loose_mode):
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, loose_mode)
    with pytest.raises(DockernetError, match=f"its mode {loose_mode:04o} lets other users write to it"):
        ensure_private_dir(loose)
    assert mode(loose) == loose_mode, "left as it was: what others planted would stay"


@pytest.mark.skipif(os.getuid() != 0, reason="planting a file of another user needs root")
def test_a_directory_holding_a_file_of_another_user_is_refused(tmp_path):
    state = ensure_private_dir(tmp_path / "state")
    planted = state / "reaper.lock"
    planted.write_text("")
    os.chown(planted, 65534, 65534)
    with pytest.raises(DockernetError, match=r"holds reaper\.lock, owned by uid 65534"):
        ensure_private_dir(state)


def test_a_planted_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "state").symlink_to(target)
    with pytest.raises(DockernetError, match="it is a symlink"):
        ensure_private_dir(tmp_path / "state")


def test_a_file_in_its_place_is_refused(tmp_path):
    (tmp_path / "state").write_text("")
    with pytest.raises(DockernetError, match="not a directory"):
        ensure_private_dir(tmp_path / "state")


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory owned by another user needs root")
def test_a_directory_owned_by_someone_else_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    with pytest.raises(DockernetError, match=f"owned by uid 65534.*set {STATE_DIR_ENV}"):
        ensure_private_dir(foreign)


def test_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "explicit"))
    assert default_state_dir() == tmp_path / "explicit"
    monkeypatch.delenv(STATE_DIR_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_state_dir() == tmp_path / "pytest-dockernet"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_state_dir().name == f"pytest-dockernet-{os.getuid()}"


def test_one_lock_file_per_engine_and_kind(tmp_path):
    assert lock_path(tmp_path, "subnets", "engine-a") != lock_path(tmp_path, "subnets", "engine-b")
    assert lock_path(tmp_path, "subnets", "engine-a") != lock_path(tmp_path, "images", "engine-a")
    assert lock_path(tmp_path, "subnets", "engine-a") == lock_path(tmp_path, "subnets", "engine-a")
