"""The image's command, run outside Docker (no daemon here): the Dockerfile's CMD serves a bundle and its
HEALTHCHECK passes against it; docker-compose runs the same command, with a PostgreSQL store."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE_BUNDLE, IMAGE_PORT = "/srv/foryou/bundle", "8080"


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON argv of the Dockerfile's last `name` instruction (for HEALTHCHECK: the argv after its CMD)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(name + " ")]
    assert lines, f"no {name} in the Dockerfile"
    return json.loads(lines[-1][lines[-1].index("CMD [") + 4:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local(argv: list[str], bundle: Path, port: int) -> list[str]:
    """The image's argv with its paths and port mapped to this machine (the venv's executables)."""
    binaries = Path(sys.executable).parent
    mapped = [str(bundle) if part == IMAGE_BUNDLE else part for part in argv]
    mapped = [part.replace(IMAGE_PORT, str(port)) if IMAGE_PORT in part else part for part in mapped]
    mapped[0] = str(binaries / mapped[0])
    return mapped


def test_the_image_command_serves_and_passes_its_healthcheck(shop_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "srv" / "bundle"
    shutil.copytree(shop_bundle, bundle)
    port = free_port()
    command = local(dockerfile_instruction("CMD"), bundle, port)
    assert command[1:3] == ["serve", str(bundle)] and "0.0.0.0" in command
    server = subprocess.Popen(command, env={**os.environ, "FORYOU_API_KEYS": "k"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()[1][-2000:]
            time.sleep(0.3)
        else:
            pytest.fail("the image command did not become ready in 90 s")
        healthcheck = dockerfile_instruction("HEALTHCHECK")
        assert subprocess.run(local(healthcheck, bundle, port), timeout=30, check=False).returncode == 0
        assert (tmp_path / "srv" / "service.db").exists()  # the store sits beside the bundle, as in the image
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_compose_runs_the_image_command_with_a_postgresql_store() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["api"]["command"]
    assert command[:len(dockerfile_instruction("CMD"))] == dockerfile_instruction("CMD")
    assert any(part.startswith("serving.store_url=postgresql+psycopg://") for part in command)
    assert compose["services"]["api"]["volumes"][0].endswith(f":{IMAGE_BUNDLE}:ro")
