"""Pod volumes as the node mounts them: hostPath type checks, and container starts that share a staging
directory (needs root, as the node does: each start runs in its own mount namespace)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from podium_localcluster.node.envvars import Sources
from podium_localcluster.node.runtime import launch_argv
from podium_localcluster.node.volumes import Mount, VolumeError, host_path, materialize

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_host_path_without_type_creates_a_missing_directory(tmp_path: Path) -> None:
    assert host_path({"path": str(tmp_path / "a" / "b")}) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("x")
    assert host_path({"path": str(tmp_path / "f")}) == tmp_path / "f"  # no type: no check


def test_host_path_types_are_checked_with_the_kubelets_wording(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    assert host_path({"path": str(tmp_path / "dir"), "type": "Directory"}) == tmp_path / "dir"
    assert host_path({"path": str(tmp_path / "file"), "type": "File"}) == tmp_path / "file"
    with pytest.raises(VolumeError, match=f"hostPath type check failed: {tmp_path}/gone does not exist"):
        host_path({"path": str(tmp_path / "gone"), "type": "Directory"})
    with pytest.raises(VolumeError, match="is not a directory"):
        host_path({"path": str(tmp_path / "file"), "type": "Directory"})
    with pytest.raises(VolumeError, match="is not a directory"):
        host_path({"path": str(tmp_path / "file"), "type": "DirectoryOrCreate"})
    with pytest.raises(VolumeError, match="is not a file"):
        host_path({"path": str(tmp_path / "dir"), "type": "File"})
    with pytest.raises(VolumeError, match="is not a socket"):
        host_path({"path": str(tmp_path / "file"), "type": "Socket"})
    with pytest.raises(VolumeError, match='hostPath type "Whatever" is not supported'):
        host_path({"path": str(tmp_path), "type": "Whatever"})


def test_host_path_or_create_types_create_what_is_missing(tmp_path: Path) -> None:
    host_path({"path": str(tmp_path / "d" / "e"), "type": "DirectoryOrCreate"})
    host_path({"path": str(tmp_path / "x" / "f.txt"), "type": "FileOrCreate"})
    assert (tmp_path / "d" / "e").is_dir() and (tmp_path / "x" / "f.txt").read_text() == ""
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        assert host_path({"path": str(tmp_path / "s"), "type": "Socket"}) == tmp_path / "s"
    finally:
        sock.close()


def test_materialize_gives_a_host_path_volume_its_own_path(tmp_path: Path) -> None:
    pod = {**POD, "spec": {"volumes": [{"name": "m", "hostPath": {"path": str(tmp_path / "models")}}]}}
    vols = materialize(pod, tmp_path / "pod", Sources(), {}, "127.64.0.2")
    assert vols == {"m": tmp_path / "models"} and not (tmp_path / "pod" / "volumes" / "m").exists()


def test_starts_sharing_a_stage_directory_do_not_meet_each_others_slots(tmp_path: Path) -> None:
    """The fallback stage directories are shared by every pod on the node. One container's hosts file takes slot
    2 and the next container has a directory there: the second start used to die in `mkdir` ("File exists")."""
    stage = tmp_path / "stage"
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    dirs = [tmp_path / f"src{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()
        (d / "name").write_text(d.name)
    targets = [tmp_path / f"mnt{i}" for i in range(4)]
    two = [Mount(d, str(t), True) for d, t in zip(dirs[:2], targets, strict=False)]
    four = [Mount(d, str(t), True) for d, t in zip(dirs, targets, strict=True)]
    show = ["/bin/sh", "-c", f"cat {targets[-1]}/name 2>/dev/null; cat {targets[1]}/name"]
    first = run(launch_argv(show, two, hosts, "/", stage=stage))
    second = run(launch_argv(show, four, hosts, "/", stage=stage))
    assert (first.returncode, first.stdout) == (0, "src1")
    assert (second.returncode, second.stderr, second.stdout) == (0, "", "src3src1")
    assert list(stage.iterdir()) == []  # the slots lived in the containers' namespaces only


def test_an_empty_dir_keeps_its_files_across_a_container_restart(tmp_path: Path) -> None:
    """A restart mounts the same volumes again: what the first run wrote is there for the second."""
    data = tmp_path / "pod" / "volumes" / "data"
    data.mkdir(parents=True)
    target = tmp_path / "data"
    argv = launch_argv(
        ["/bin/sh", "-c", f"echo run >> {target}/runs; wc -l < {target}/runs"],
        [Mount(data, str(target), False)],
        tmp_path / "pod" / "hosts",
        "/",
        stage=tmp_path / "pod" / "stage",
    )
    (tmp_path / "pod" / "hosts").write_text("")
    assert [run(argv).stdout.strip() for _ in range(2)] == ["1", "2"]
    assert (data / "runs").read_text() == "run\nrun\n"
    assert not (target / "runs").exists()  # written through the mount, into the volume's directory only


def test_read_only_and_read_write_host_paths(tmp_path: Path) -> None:
    ro_src, rw_src = tmp_path / "models", tmp_path / "out"
    ro_src.mkdir()
    rw_src.mkdir()
    (ro_src / "m.gguf").write_text("weights")
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    script = f"cat {ro}/m.gguf; touch {ro}/x 2>/dev/null && echo ro-writable; echo done > {rw}/result"
    argv = launch_argv(
        ["/bin/sh", "-c", script],
        [Mount(ro_src, str(ro), True), Mount(rw_src, str(rw), False)],
        None,
        "/",
        stage=tmp_path / "stage",
    )
    for _ in range(2):  # the second start is the one that used to fail
        out = run(argv)
        assert (out.returncode, out.stdout) == (0, "weights")
    assert (rw_src / "result").read_text() == "done\n" and not (ro_src / "x").exists()
