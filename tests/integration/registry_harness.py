"""A real registry (Debian's ``docker-registry``, distribution 2.8) on 127.0.0.1, for pull/push tests.

``Registry`` writes a temporary config (filesystem storage under its own dir; optional htpasswd
Basic auth), starts ``docker-registry serve`` on a free port, waits until ``/v2/`` answers, and
``close`` stops it and deletes its dir — also when a test failed. ``skopeo`` puts images into it.
``make_test_ca`` makes a CA and a server certificate for 127.0.0.1 with ``openssl``, for TLS.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.daemon_harness import free_port, terminate

REGISTRY_BIN = "/usr/bin/docker-registry"
REPO = Path(__file__).resolve().parents[2]


class Registry:
    def __init__(self, workdir: Path, htpasswd: Path | None = None, tls: tuple[Path, Path] | None = None,
                 log_level: str = "warn", auth: str = "") -> None:
        """``auth``: an ``auth:`` config section of the caller's (token auth); ``htpasswd``: Basic auth."""
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n"
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"log:\n  level: {log_level}\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
            + auth)
        self.tls = tls
        log = open(self.dir / "registry.log", "ab")
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self._wait_until_answering()

    def _wait_until_answering(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError("registry exited:\n" + (self.dir / "registry.log").read_text())
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("registry did not answer")
            time.sleep(0.05)

    def _answers(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"{'https' if self.tls else 'http'}://{self.host}/v2/", timeout=1,
                                        context=context):
                return True
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def log(self) -> str:
        return (self.dir / "registry.log").read_text(errors="replace")

    def skopeo_copy(self, source: str, repo_tag: str, *, creds: str | None = None) -> None:
        """Copy ``source`` (any skopeo transport) to ``repo_tag`` in this registry."""
        argv = ["skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false"]
        if creds:
            argv.append(f"--dest-creds={creds}")
        subprocess.run([*argv, source, f"docker://{self.host}/{repo_tag}"], check=True, capture_output=True,
                       timeout=120)

    def close(self) -> None:
        terminate(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class DockyardRegistry(Registry):
    """Our own registry server, ``dockyard registry serve`` (run through our CLI), on a free port,
    storing under ``<workdir>/storage`` (or ``root``); ``extra`` are more ``serve`` flags
    (``--read-only``); ``tls`` (cert, key), ``auth`` (the config's ``auth`` object) and ``config``
    (more keys: ``limits``, ``chunk_min_length``) go into a config file."""

    def __init__(self, workdir: Path, *extra: str, root: Path | None = None,
                 tls: tuple[Path, Path] | None = None, auth: dict[str, Any] | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root = root or self.dir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        config = dict(config or {})
        if tls is not None:
            config["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        if auth is not None:
            config["auth"] = auth
        if config:
            (self.dir / "config.json").write_text(json.dumps(config))
            extra = (*extra, "--config", str(self.dir / "config.json"))
        log = open(self.dir / "registry.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.cli.main", "registry", "serve", "--addr", self.host,
             "--root", str(self.root), *extra],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        log.close()
        self._wait_until_answering()

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}{path}"


def make_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for IP 127.0.0.1 signed by it: (ca.crt, server.crt, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dockyard test CA",
            "-keyout", str(ca_key), "-out", str(ca_crt))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return ca_crt, crt, key


def run_output(daemon: Any, image: str, *command: str) -> str:
    """Run ``command`` in a container of ``image`` on ``daemon`` (our CLI) and return its output,
    read from the container's log (``run -d``, ``wait``, ``logs``), so these tests of registries do
    not depend on attach (which lost a short container's output under load before the shim fix)."""
    started = daemon.cli("run", "-d", image, *command, timeout=120)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip().splitlines()[-1]
    try:
        waited = daemon.cli("wait", container, timeout=60)
        assert waited.stdout.strip() == "0", waited.stdout + waited.stderr
        return str(daemon.cli("logs", container, timeout=30).stdout)
    finally:
        daemon.cli("rm", "-f", container, timeout=30)
