"""A documented Dockerfile check, since hadolint cannot be installed here (it downloads a binary).

Rules, for every Dockerfile in agent-images/:
  DF1 every FROM names a pinned base: an exact version tag (python:3.12.8-slim-...) or a digest; no `latest`.
  DF2 bases are slim variants (smaller attack surface, faster pulls).
  DF3 the final stage runs as a non-root numeric USER (runAsNonRoot can only verify numeric ids).
  DF4 no ADD of URLs (unverified downloads); COPY for local files.
  DF5 ENTRYPOINT is the exec form starting with the image's program (`podium`; `llama-server` for the model server).
  DF6 no HEALTHCHECK: Kubernetes ignores it; probes are defined on the pod.
  DF7 pip installs use --no-cache-dir (no cache left in a layer).
  DF8 every local COPY source exists in the repository and is not excluded by the Dockerfile's .dockerignore.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "agent-images"
DOCKERFILES = sorted(p for p in IMAGES.glob("Dockerfile.*") if p.suffix != ".dockerignore")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics, reduced: later patterns win; `!` re-includes; a directory covers its files."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if pat == "**" or fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or path == pat:
            result = not negate
    return result


def dockerignore(dockerfile: str = "") -> list[str]:
    """The patterns BuildKit applies: <Dockerfile>.dockerignore next to the Dockerfile, else .dockerignore."""
    own = IMAGES / f"{dockerfile}.dockerignore"
    lines = (own if dockerfile and own.exists() else IMAGES / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def problems(text: str, *, check_sources: bool = True, entrypoint: str = "podium", dockerfile: str = "") -> list[str]:
    found: list[str] = []
    steps = instructions(text)
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    if not stages:
        return ["no FROM"]
    for _, args in (steps[i] for i in stages):
        image = args.split()[0]
        if "@sha256:" not in image and not re.search(r":\d+\.\d+\.\d+", image):
            found.append(f"DF1 base {image!r} is not pinned to an exact version or digest")
        if "slim" not in image and "alpine" not in image and "distroless" not in image:
            found.append(f"DF2 base {image!r} is not a slim variant")
    final = steps[stages[-1] :]
    users = [args for word, args in final if word == "USER"]
    if not users:
        found.append("DF3 final stage has no USER (runs as root)")
    elif not users[-1].split(":")[0].isdigit() or users[-1].split(":")[0] == "0":
        found.append(f"DF3 final USER {users[-1]!r} must be a non-zero numeric uid")
    for word, args in steps:
        if word == "ADD" and re.search(r"https?://", args):
            found.append(f"DF4 ADD of a URL: {args}")
        if word == "HEALTHCHECK":
            found.append("DF6 HEALTHCHECK is ignored by Kubernetes; use pod probes")
        if word == "RUN" and "pip install" in args and "--no-cache-dir" not in args:
            found.append("DF7 pip install without --no-cache-dir")
        if word == "COPY" and check_sources and "--from=" not in args:
            patterns = dockerignore(dockerfile)
            for source in args.split()[:-1]:
                rel = source.removeprefix("./").rstrip("/")
                if not (ROOT / rel).exists():
                    found.append(f"DF8 COPY source {source!r} does not exist")
                elif ignored(rel, patterns):
                    found.append(f"DF8 COPY source {source!r} is excluded by .dockerignore")
    entry = [args for word, args in steps if word == "ENTRYPOINT"]
    try:
        form = json.loads(entry[-1]) if entry else None
    except json.JSONDecodeError:
        form = None
    if not isinstance(form, list) or not form or form[0] != entrypoint:
        found.append(f"DF5 ENTRYPOINT must be the exec form starting with {entrypoint}")
    return found


def test_images_exist() -> None:
    names = {p.name for p in DOCKERFILES}
    assert names == {"Dockerfile.agent", "Dockerfile.operator", "Dockerfile.model-server"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_follows_the_rules(dockerfile: Path) -> None:
    entrypoint = "llama-server" if dockerfile.name == "Dockerfile.model-server" else "podium"
    assert problems(dockerfile.read_text(), entrypoint=entrypoint, dockerfile=dockerfile.name) == []


def test_agent_image_runs_the_agent() -> None:
    steps = instructions((IMAGES / "Dockerfile.agent").read_text())
    assert ("CMD", '["agent"]') in steps


def test_dockerignore_applies_to_both_images() -> None:
    for name in ("Dockerfile.agent.dockerignore", "Dockerfile.operator.dockerignore"):
        assert (IMAGES / name).resolve() == (IMAGES / ".dockerignore").resolve()
    patterns = dockerignore()
    for private in (".venv/bin/python", ".git/config", ".podium/kubeconfig", "tests/conftest.py"):
        assert ignored(private, patterns), private
    assert not ignored("operator/podium/agent/runtime.py", patterns)


@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ('FROM python:latest\nUSER 1000\nENTRYPOINT ["podium"]', "DF1"),
        ('FROM python:3.12.8\nUSER 1000\nENTRYPOINT ["podium"]', "DF2"),
        ('FROM python:3.12.8-slim\nENTRYPOINT ["podium"]', "DF3"),
        ('FROM python:3.12.8-slim\nUSER root\nENTRYPOINT ["podium"]', "DF3"),
        ('FROM python:3.12.8-slim\nADD https://x.example/a.tgz /a\nUSER 1\nENTRYPOINT ["podium"]', "DF4"),
        ("FROM python:3.12.8-slim\nUSER 1\nENTRYPOINT podium agent", "DF5"),
        ('FROM python:3.12.8-slim\nUSER 1\nHEALTHCHECK CMD true\nENTRYPOINT ["podium"]', "DF6"),
        ('FROM python:3.12.8-slim\nRUN pip install \\\n  x\nUSER 1\nENTRYPOINT ["podium"]', "DF7"),
        ('FROM python:3.12.8-slim\nCOPY tests/ t/\nUSER 1\nENTRYPOINT ["podium"]', "DF8"),
    ],
)
def test_the_check_catches_each_rule(snippet: str, rule: str) -> None:
    assert any(p.startswith(rule) for p in problems(snippet)), problems(snippet)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_do_not_ship_the_local_cluster(dockerfile: Path) -> None:
    # The local cluster is a distribution of its own (localcluster/) for tests and the demo, never the product's.
    sources = [
        source.removeprefix("./").rstrip("/")
        for word, args in instructions(dockerfile.read_text())
        if word == "COPY" and "--from=" not in args
        for source in args.split()[:-1]
    ]
    assert sources and not any(s == "localcluster" or s.startswith("localcluster/") for s in sources), sources
    assert not any((ROOT / s).is_dir() and any((ROOT / s).rglob("podium_localcluster")) for s in sources), sources
    assert ignored("localcluster/podium_localcluster/cli.py", dockerignore())
