"""A real registry (Debian's ``docker-registry``, distribution 2.8) on 127.0.0.1, for pull/push tests.

``Registry`` writes a temporary config (filesystem storage under its own dir; optional htpasswd
Basic auth), starts ``docker-registry serve`` on a free port, waits until ``/v2/`` answers, and
``close`` stops it and deletes its dir — also when a test failed. ``skopeo`` puts images into it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    def __init__(self, workdir: Path, htpasswd: Path | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth = ""
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n"
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            + auth)
        log = open(self.dir / "registry.log", "ab")
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError("registry exited:\n" + (self.dir / "registry.log").read_text())
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("registry did not answer")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def skopeo_copy(self, source: str, repo_tag: str, *, creds: str | None = None) -> None:
        """Copy ``source`` (any skopeo transport) to ``repo_tag`` in this registry."""
        argv = ["skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false"]
        if creds:
            argv.append(f"--dest-creds={creds}")
        subprocess.run([*argv, source, f"docker://{self.host}/{repo_tag}"], check=True, capture_output=True,
                       timeout=120)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
