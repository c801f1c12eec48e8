"""A real Redis server for the key-value tests: Debian's redis-server on
127.0.0.1 with an ephemeral port, in a directory of its own, persisting
nothing, stopped and started again on the same port when a test needs the
backend to go away. With tls=True it listens for TLS only, with a
certificate for 127.0.0.1 from a CA made for it (`ca` is the CA's file)."""

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from apache import free_port

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def make_certificates(folder):
    """A CA (ca.pem) and a certificate for 127.0.0.1 it signed (server.pem,
    server.key), with the extensions rustls requires."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=mod_wasm test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem")


class Redis:
    def __init__(self, tls=False):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mod_wasm-redis-"))
        self.process = None
        self.tls = tls
        if tls:
            make_certificates(self.dir)

    @property
    def url(self):
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def ca(self):
        return self.dir / "ca.pem"

    def connect(self):
        """A socket to the server, TLS-wrapped if it speaks TLS."""
        plain = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if not self.tls:
            return plain
        context = ssl.create_default_context(cafile=str(self.ca))
        return context.wrap_socket(plain, server_hostname="127.0.0.1")

    def start(self):
        listen = ["--port", str(self.port)]
        if self.tls:
            listen = ["--port", "0", "--tls-port", str(self.port),
                      "--tls-cert-file", str(self.dir / "server.pem"),
                      "--tls-key-file", str(self.dir / "server.key"),
                      "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no"]
        self.process = subprocess.Popen(
            [REDIS, *listen, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"],
            stdout=(self.dir / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.dir / "redis.log").read_text())
            try:
                with self.connect() as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def command(self, *args):
        """One command's raw reply (for checks from outside Apache)."""
        request = f"*{len(args)}\r\n" + "".join(
            f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
        with self.connect() as s:
            s.sendall(request.encode())
            return s.recv(65536)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
