"""Finding llama-server and the model, its command line, the local chart values, and the build recipe's pins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from podium_localcluster import modelserver
from podium_localcluster.modelserver import ModelServerFiles, ModelServerMissing, local_chart_values, locate

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "build-model-server.sh"


def fake_build(root: Path, model_name: str = "m.gguf") -> tuple[Path, Path]:
    """What build-model-server.sh leaves in its output directory."""
    binary, model = root / "bin" / "llama-server", root / "models" / model_name
    binary.parent.mkdir(parents=True)
    model.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    model.write_bytes(b"GGUF")
    return binary, model


def test_environment_overrides_the_cache(tmp_path: Path) -> None:
    binary, model = fake_build(tmp_path)
    found = locate({"PODIUM_LLAMA_SERVER": str(binary), "PODIUM_MODEL_PATH": str(model)})
    assert found == ModelServerFiles(binary, model)


def test_default_is_the_build_scripts_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    built = fake_build(tmp_path / ".cache" / "podium" / "llama-0.3.36", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert locate({}) == ModelServerFiles(*built)


def test_missing_files_are_named_with_the_build_command(tmp_path: Path) -> None:
    binary, _ = fake_build(tmp_path)
    binary.chmod(0o644)  # there, but not executable
    env = {"PODIUM_LLAMA_SERVER": str(binary), "PODIUM_MODEL_PATH": str(tmp_path / "gone.gguf")}
    with pytest.raises(ModelServerMissing) as e:
        locate(env)
    message = str(e.value)
    assert f"no executable llama-server at {binary} (PODIUM_LLAMA_SERVER overrides)" in message
    assert f"no model file at {tmp_path / 'gone.gguf'} (PODIUM_MODEL_PATH overrides)" in message
    assert "`bash scripts/build-model-server.sh`" in message


def test_command_line_gives_every_parallel_slot_the_context_size() -> None:
    files = ModelServerFiles(Path("/b/llama-server"), Path("/m/x.gguf"))
    argv = modelserver.server_argv(files, "127.0.0.1", 8080, context_size=1024, parallel=3, threads=2)
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert argv[0] == "/b/llama-server"
    assert flags["--model"] == "/m/x.gguf" and flags["--host"] == "127.0.0.1" and flags["--port"] == "8080"
    assert (flags["--ctx-size"], flags["--parallel"], flags["--threads"]) == ("3072", "3", "2")


def test_local_chart_values_run_the_cached_binary_with_the_model_dir_mounted_in_place() -> None:
    files = ModelServerFiles(Path("/c/bin/llama-server"), Path("/c/models/x.gguf"))
    assert local_chart_values(files) == {
        "modelServer": {
            "enabled": True,
            "command": ["/c/bin/llama-server"],
            "model": {"file": "x.gguf", "dir": "/c/models", "hostPath": "/c/models"},
        }
    }


def test_build_script_pins_what_the_module_expects() -> None:
    script = SCRIPT.read_text()
    assert re.search(rf"^LLAMA_CPP_PYTHON_VERSION={re.escape(modelserver.LLAMA_CPP_PYTHON_VERSION)}$", script, re.M)
    assert re.search(rf"^MODEL_FILE={re.escape(modelserver.MODEL_FILE)}$", script, re.M)
    # A native build uses instructions the build CPU advertises (AMX on these machines) and dies with SIGILL.
    assert "-DGGML_NATIVE=OFF" in script


def test_model_server_image_is_built_by_the_same_script_and_serves_the_same_model() -> None:
    dockerfile = (ROOT / "agent-images" / "Dockerfile.model-server").read_text()
    assert "COPY scripts/build-model-server.sh " in dockerfile
    assert re.search(r"^RUN bash /src/build-model-server.sh /opt/llama$", dockerfile, re.M)
    assert f'"/models/{modelserver.MODEL_FILE}"' in dockerfile
