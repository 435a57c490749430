"""The daemon's doors: TCP only with mutual TLS (or an explicit ``--tls=false``), the unix socket's
group, and an autostart that never runs code from the caller's directory (needs root)."""

from __future__ import annotations

import grp
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.integration.daemon_harness import (
    DOCKER_20,
    DOCKER_28,
    REPO,
    free_port,
    mounts_under,
    ping,
    processes_mentioning,
    terminate,
)
from tests.integration.test_daemon_config import start

pytestmark = pytest.mark.root


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    """``<name>.pem`` + ``<name>-key.pem``: a self-signed CA."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory)


def issue(directory: Path, ca: str, name: str, extensions: str) -> None:
    """``<name>-cert.pem`` + ``<name>-key.pem`` signed by CA ``ca``."""
    (directory / f"{name}.ext").write_text(extensions)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-days", "2", "-out", f"{name}-cert.pem", "-extfile", f"{name}.ext", cwd=directory)


@dataclass
class TLSDaemon:
    port: int
    certs: Path
    sock: Path
    group: str
    log: Path

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def client_flags(self) -> list[str]:
        c = self.certs
        return ["--tlsverify", f"--tlscacert={c / 'ca.pem'}", f"--tlscert={c / 'client-cert.pem'}",
                f"--tlskey={c / 'client-key.pem'}", "-H", self.host]


def env(**extra: str) -> dict[str, str]:
    """Our environment without any Docker/dockyard host or TLS settings, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    clean["DOCKER_CONFIG"] = "/nonexistent-docker-config"
    return {**clean, **extra}


def run(argv: list[str], input: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env(**extra), timeout=60, input=input,
                          stdin=subprocess.DEVNULL if input is None else None)


def our_cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "dockyard.cli.main", *args], **extra)


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[TLSDaemon]:
    """A daemon with ``--tlsverify`` on a free TCP port, and a unix socket owned by a throwaway group;
    busybox imported."""
    tmp = tmp_path_factory.mktemp("tls")
    certs = tmp / "certs"
    certs.mkdir()
    make_ca(certs, "ca")
    issue(certs, "ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    issue(certs, "ca", "client", "extendedKeyUsage=clientAuth\n")
    make_ca(certs, "other-ca")
    issue(certs, "other-ca", "stranger", "extendedKeyUsage=clientAuth\n")
    group = f"dy{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", group], check=True)
    port = free_port()
    d = TLSDaemon(port, certs, tmp / "d.sock", group, tmp / "log")
    proc = start(["--root", str(tmp / "root"), "-H", d.host, "-H", f"unix://{d.sock}", "-G", group,
                  "--tlsverify", f"--tlscacert={certs / 'ca.pem'}", f"--tlscert={certs / 'server-cert.pem'}",
                  f"--tlskey={certs / 'server-key.pem'}"], d.log)
    try:
        deadline = time.monotonic() + 20
        while not ping(d.sock):
            assert proc.poll() is None, d.log.read_text()
            assert time.monotonic() < deadline, d.log.read_text()
            time.sleep(0.05)
        api = docker.APIClient(base_url=f"unix://{d.sock}", version="auto", timeout=60)
        api.import_image_from_data(busybox_tar.read_bytes(), repository="busybox", tag="latest",
                                   changes=['CMD ["sh"]'])
        api.close()
        yield d
    finally:
        terminate(proc)
        subprocess.run(["groupdel", group], check=False)
        for pid in processes_mentioning(str(tmp / "root")):
            os.kill(pid, signal.SIGKILL)
        for target in reversed(mounts_under(tmp)):
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def test_clients_with_a_certificate_get_in(tls_daemon: TLSDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    d, certs = tls_daemon, tls_daemon.certs
    out = our_cli(*d.client_flags(), "info", "--format", "{{.DockerRootDir}}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("/root")
    # Attach over TLS (a hijacked stream): the container's output comes back, and the end of our
    # stdin reaches the container (the client half-closes the TCP connection under TLS, as Docker's does).
    out = our_cli(*d.client_flags(), "run", "--rm", "busybox", "echo", "over tls")
    assert (out.returncode, out.stdout) == (0, "over tls\n"), out.stderr
    out = run([sys.executable, "-m", "dockyard.cli.main", *d.client_flags(), "run", "-i", "--rm", "busybox", "cat"],
              input="piped over tls\n")
    assert (out.returncode, out.stdout) == (0, "piped over tls\n"), out.stderr
    # Docker's environment variables: DOCKER_CERT_PATH holds ca.pem, cert.pem, key.pem.
    env_dir = certs / "env"
    env_dir.mkdir(exist_ok=True)
    for src, dst in (("ca.pem", "ca.pem"), ("client-cert.pem", "cert.pem"), ("client-key.pem", "key.pem")):
        (env_dir / dst).write_bytes((certs / src).read_bytes())
    out = our_cli("-H", d.host, "ps", DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(env_dir))
    assert out.returncode == 0 and out.stdout.startswith("CONTAINER ID"), out.stderr
    for client in (DOCKER_28, DOCKER_20):
        out = run([client, *d.client_flags(), "run", "--rm", "busybox", "echo", "over tls"])
        assert (out.returncode, out.stdout) == (0, "over tls\n"), (client, out.stderr)
        out = run([client, *d.client_flags(), "run", "-i", "--rm", "busybox", "cat"], input="piped over tls\n")
        assert (out.returncode, out.stdout) == (0, "piped over tls\n"), (client, out.stderr)
        out = run([client, "ps"], DOCKER_HOST=d.host, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(env_dir))
        assert out.returncode == 0 and out.stdout.startswith("CONTAINER ID"), (client, out.stderr)
    # requests lets these variables override the CA docker-py passes: keep them out of the way.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    tls = docker.tls.TLSConfig(client_cert=(str(certs / "client-cert.pem"), str(certs / "client-key.pem")),
                               ca_cert=str(certs / "ca.pem"), verify=True)
    api = docker.DockerClient(base_url=f"https://127.0.0.1:{d.port}", tls=tls, version="auto", timeout=30)
    try:
        assert api.ping()
        assert api.info()["DockerRootDir"].endswith("/root")
    finally:
        api.close()


def _ping_over_tls(context: ssl.SSLContext, port: int) -> bytes:
    """Ask for /_ping over TLS; the answer's first bytes, ``b""`` if the daemon refused us (with TLS 1.3
    a refused client certificate shows after the handshake, as an alert or a closed connection)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return tls.recv(4096)
    except (ssl.SSLError, ConnectionError):
        return b""


def test_clients_without_a_valid_certificate_are_refused(tls_daemon: TLSDaemon) -> None:
    d, certs = tls_daemon, tls_daemon.certs
    def context(name: str | None) -> ssl.SSLContext:
        trusting = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        if name:
            trusting.load_cert_chain(certs / f"{name}-cert.pem", certs / f"{name}-key.pem")
        return trusting

    assert _ping_over_tls(context("client"), d.port).startswith(b"HTTP/1.1 200")  # the control
    assert _ping_over_tls(context(None), d.port) == b""  # no client certificate
    assert _ping_over_tls(context("stranger"), d.port) == b""  # a certificate from another CA
    # Plain HTTP to the TLS port gets Go's 400, nothing else.
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw:
        raw.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            answer = raw.recv(4096)
        except ConnectionError:
            answer = b""
        assert answer == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    # The same through the CLIs.
    out = our_cli("--tlsverify", f"--tlscacert={certs / 'ca.pem'}", "-H", d.host, "ps")
    assert out.returncode != 0 and "CONTAINER ID" not in out.stdout
    out = our_cli("-H", d.host, "ps")
    assert out.returncode != 0 and "CONTAINER ID" not in out.stdout
    stranger = ["--tlsverify", f"--tlscacert={certs / 'ca.pem'}", f"--tlscert={certs / 'stranger-cert.pem'}",
                f"--tlskey={certs / 'stranger-key.pem'}", "-H", d.host]
    for client in (DOCKER_28, DOCKER_20):
        out = run([client, *stranger, "ps"])
        assert out.returncode != 0 and "CONTAINER ID" not in out.stdout, client
        out = run([client, "-H", d.host, "ps"])
        assert out.returncode != 0 and "CONTAINER ID" not in out.stdout, client
    assert "Traceback" not in d.log.read_text()


def test_unix_socket_belongs_to_the_group(tls_daemon: TLSDaemon) -> None:
    st = os.stat(tls_daemon.sock)
    assert st.st_gid == grp.getgrnam(tls_daemon.group).gr_gid
    assert st.st_uid == 0 and oct(st.st_mode & 0o777) == "0o660"


def run_daemon(args: list[str], log: Path) -> tuple[int | None, str]:
    """Start a daemon expected to refuse to start: its exit status (``None`` if it kept running:
    then it is stopped) and its log."""
    proc = start(args, log)
    try:
        status: int | None = proc.wait(20)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        terminate(proc)
    return status, log.read_text()


def test_plain_tcp_is_refused_unless_tls_is_switched_off(tmp_path: Path) -> None:
    port = free_port()
    root = str(tmp_path / "root")
    status, text = run_daemon(["--root", root, "-H", f"tcp://127.0.0.1:{port}"], tmp_path / "refused.log")
    assert status == 1, text
    assert f"refusing to listen on tcp://127.0.0.1:{port} without TLS" in text and "--tls=false" in text
    assert "Traceback" not in text
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # No port: a clear error, not a traceback.
    status, text = run_daemon(["--root", root, "-H", "tcp://127.0.0.1", "--tls=false"], tmp_path / "noport.log")
    assert status == 1, text
    assert "invalid host: tcp://127.0.0.1: a tcp host needs a port" in text and "Traceback" not in text
    # --tls=false: it listens, with dockerd's warning.
    proc = start(["--root", root, "-H", f"tcp://127.0.0.1:{port}", "--tls=false"], tmp_path / "open.log")
    try:
        deadline = time.monotonic() + 20
        while not plain_ping(port):
            assert proc.poll() is None, (tmp_path / "open.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        api = docker.APIClient(base_url=f"tcp://127.0.0.1:{port}", version="1.41", timeout=10)
        assert api.ping()
        api.close()
        text = (tmp_path / "open.log").read_text()
        assert "Binding to IP address without --tlsverify is insecure and gives root access on this machine " \
               "to everyone who has access to your network." in text
    finally:
        terminate(proc)


def plain_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


PLANTED = '''import pathlib
pathlib.Path({marker!r}).write_text(__name__ + "\\n")
'''


def test_autostart_ignores_modules_planted_in_the_current_directory(tmp_path: Path) -> None:
    """A ``dockyard`` package in the caller's directory must not run as root when the CLI starts the daemon."""
    planted = tmp_path / "planted"
    marker = tmp_path / "PWNED"
    for rel in ("dockyard/__init__.py", "dockyard/cli/__init__.py", "dockyard/cli/main.py",
                "dockyard/daemon/__init__.py", "dockyard/daemon/main.py"):
        (planted / rel).parent.mkdir(parents=True, exist_ok=True)
        (planted / rel).write_text(PLANTED.format(marker=str(marker)))
    sock, root, pidfile, log = tmp_path / "d.sock", tmp_path / "root", tmp_path / "d.pid", tmp_path / "autostart.log"
    # The installed launcher runs ``python -I -S`` with this checkout on sys.path, from the user's directory.
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from dockyard.cli import autostart, client; "
            f"autostart.start_daemon(client.parse_address({'unix://' + str(sock)!r}), {str(log)!r}, 20, "
            f"['--root', {str(root)!r}, '-H', {'unix://' + str(sock)!r}, '--pidfile', {str(pidfile)!r}])")
    try:
        out = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=planted, capture_output=True, text=True,
                             timeout=60, env=env(PYTHONPATH=str(planted)))
        assert not marker.exists(), f"a planted module ran as root: {marker.read_text()}"
        assert out.returncode == 0, out.stderr + (log.read_text() if log.exists() else "")
        assert ping(sock)
        pid = int(pidfile.read_text())
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert (root / "engine-id").exists()
    finally:
        for pid in processes_mentioning(str(root)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while processes_mentioning(str(root)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in processes_mentioning(str(root)):
            os.kill(pid, signal.SIGKILL)
        for target in reversed(mounts_under(tmp_path)):
            subprocess.run(["umount", "-l", target], check=False)
