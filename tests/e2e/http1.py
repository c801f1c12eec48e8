"""A small HTTP/1.1 client over a raw socket.

The tests need what ordinary clients hide: header values as exact bytes,
repeated headers in order, chunked uploads from a generator, timing of the
first body byte, and whether a response ended cleanly or was cut.
"""

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

TIMEOUT = 120


@dataclass
class Response:
    status: int
    headers: list  # [(name_lower: bytes, value: bytes)] in order
    body: bytes = b""
    complete: bool = True  # False when the connection was cut mid-body
    first_byte_at: float = 0.0  # time.monotonic() of the first body byte
    last_byte_at: float = 0.0
    chunks: list = field(default_factory=list)
    trailers: list = field(default_factory=list)  # as headers, after a chunked body

    def header(self, name):
        values = self.all(name)
        return values[0] if values else None

    def all(self, name):
        name = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v for (n, v) in self.headers if n == name]


class Connection:
    def __init__(self, port, host="127.0.0.1", tls=False):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        if tls:
            # The tests' servers use throwaway self-signed certificates.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_head(self, method, target, headers, authority, version="HTTP/1.1"):
        lines = [f"{method} {target} {version}".encode()]
        if authority is not None:
            lines.append(b"Host: " + authority.encode())
        for name, value in headers:
            name = name.encode() if isinstance(name, str) else name
            value = value.encode() if isinstance(value, str) else value
            lines.append(name + b": " + value)
        self.sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")

    def request(self, method, target, headers=(), body=None, authority="127.0.0.1",
                on_chunk=None, keep_chunks=False, version="HTTP/1.1", trailers=()):
        """Sends a request and reads its response.

        body: None, bytes (sent with Content-Length) or an iterable of bytes
        (sent chunked, then `trailers`, [(name, value)], in its trailer
        section). on_chunk(bytes) sees the body as it arrives; with it the
        body is not kept in the Response.
        """
        headers = list(headers)
        if isinstance(body, (bytes, bytearray)):
            headers.append(("Content-Length", str(len(body))))
        elif body is not None:
            headers.append(("Transfer-Encoding", "chunked"))
        self.send_head(method, target, headers, authority, version)
        if body is None:
            return self.read_response(method, on_chunk, keep_chunks)
        # The server may answer (an echo, a 413) while the body is still
        # going out: send from a thread and read here, or both sides stall.
        sender = threading.Thread(target=self._send_body, args=(body, trailers))
        sender.start()
        try:
            return self.read_response(method, on_chunk, keep_chunks)
        finally:
            sender.join()

    def _send_body(self, body, trailers=()):
        try:
            if isinstance(body, (bytes, bytearray)):
                self.sock.sendall(body)
                return
            for piece in body:
                if piece:
                    self.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            section = b"".join(f"{name}: {value}\r\n".encode() for name, value in trailers)
            self.sock.sendall(b"0\r\n" + section + b"\r\n")
        except OSError:
            pass  # the server stopped reading: its response says why

    def read_response(self, method="GET", on_chunk=None, keep_chunks=False):
        line = self.file.readline()
        if not line:
            raise ConnectionError("connection closed before a response")
        status = int(line.split()[1])
        headers = []
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.rstrip(b"\r\n").partition(b":")
            headers.append((name.strip().lower(), value.strip(b" \t")))
        response = Response(status, headers)
        if status == 100:
            return self.read_response(method, on_chunk, keep_chunks)
        if method == "HEAD" or status in (204, 304):
            return response

        kept = []

        def deliver(data):
            now = time.monotonic()
            if not response.first_byte_at:
                response.first_byte_at = now
            response.last_byte_at = now
            if on_chunk:
                on_chunk(data)
            else:
                kept.append(data)
            if keep_chunks:
                response.chunks.append((now, data))

        encoding = response.header("transfer-encoding")
        length = response.header("content-length")
        if encoding and b"chunked" in encoding.lower():
            response.complete = self._read_chunked(deliver, response.trailers)
        elif length is not None:
            remaining = int(length)
            while remaining:
                data = self.file.read1(min(remaining, 1 << 20))
                if not data:
                    break
                remaining -= len(data)
                deliver(data)
            response.complete = remaining == 0
        else:
            while True:
                data = self.file.read1(1 << 20)
                if not data:
                    break
                deliver(data)
        response.body = b"".join(kept)
        return response

    def _read_chunked(self, deliver, trailers):
        while True:
            size_line = self.file.readline()
            if not size_line:
                return False
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                return False
            if size == 0:
                while (line := self.file.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.rstrip(b"\r\n").partition(b":")
                    trailers.append((name.strip().lower(), value.strip(b" \t")))
                return line != b""
            while size:
                data = self.file.read1(min(size, 1 << 20))
                if not data:
                    return False
                size -= len(data)
                deliver(data)
            if self.file.readline() not in (b"\r\n", b"\n"):
                return False


def request(port, method, target, tls=False, **kwargs):
    with Connection(port, tls=tls) as conn:
        return conn.request(method, target, **kwargs)
