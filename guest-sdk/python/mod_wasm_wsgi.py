"""Serves a WSGI application (PEP 3333) as wasi:http/incoming-handler.

`mod_wasm build-python module:app` (docs/existing-apps.md) builds a
component whose entry module is, in effect:

    import mod_wasm_wsgi
    from module import app
    IncomingHandler = mod_wasm_wsgi.incoming_handler(app)

componentize-py runs that at build time and keeps the initialised
interpreter, so the app's imports (Flask's, for one) are paid once, when the
component is built, and never per request. Each call to `handle` builds a
WSGI environ from the wasi:http request, streams the request body to
`wsgi.input` as the app reads it, and streams the app's iterable back out.
"""

import codecs
import io
import sys
import traceback
from urllib.parse import unquote_to_bytes

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import request_info
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# Codecs the stdlib finds lazily, by importing a module the first time one
# is asked for (werkzeug encodes every host name as "idna"). Looked up here,
# at build time, they are in the snapshot's codec cache; looked up first in
# a request they are not found, as componentize-py's runtime can import only
# the modules the build saw.
for _codec in ("idna", "latin-1", "ascii", "utf-8"):
    codecs.lookup(_codec)

# The most blocking_write_and_flush takes in one call.
MAX_WRITE = 4096
READ_SIZE = 65536
# Headers a wasi:http response may not carry: Apache does the framing
# (Content-Length or chunked) and the connection management itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
    "host", "http2-settings", "content-length",
})


def method_name(method) -> str:
    """`Method_Get()` -> "GET", `Method_Other("PURGE")` -> "PURGE"."""
    value = getattr(method, "value", None)
    if isinstance(value, str):
        return value
    return type(method).__name__.removeprefix("Method_").upper()


class RequestBody(io.RawIOBase):
    """The request body, read from Apache only as the app asks for it."""

    def __init__(self, request: IncomingRequest):
        self._body = request.consume()
        self._stream = self._body.stream()
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._ended:
            try:
                self._pending = self._stream.blocking_read(READ_SIZE)
            except Err as error:
                if not isinstance(error.value, StreamError_Closed):
                    raise OSError(f"reading the request body: {error.value}") from None
                self._ended = True
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._stream.__exit__(None, None, None)
            self._body.__exit__(None, None, None)
        super().close()


def split_location(path: str) -> tuple[str, str]:
    """(SCRIPT_NAME, PATH_INFO) for a request path: the <Location> that
    serves the app is its mount point, so the app's own URLs (Flask's
    url_for) carry it."""
    location = request_info.location().rstrip("/")
    if location.startswith("/") and (path == location or path.startswith(location + "/")):
        return location, path[len(location):]
    return "", path


def environ_for(request: IncomingRequest) -> dict:
    target = request.path_with_query() or "/"
    raw_path, _, query = target.partition("?")
    # PEP 3333: PATH_INFO is decoded, as bytes in a latin-1 str.
    path = unquote_to_bytes(raw_path).decode("latin-1")
    script_name, path_info = split_location(path)
    scheme = "https" if request_info.tls() else "http"
    authority = request.authority() or ""
    host, _, port = authority.rpartition(":") if authority.rpartition(":")[2].isdigit() else (authority, "", "")
    environ = {
        "REQUEST_METHOD": method_name(request.method()),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": host or "localhost",
        "SERVER_PORT": port or ("443" if scheme == "https" else "80"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request_info.client_addr(),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # The body ends where the stream does, with or without a length.
        "wsgi.input_terminated": True,
    }
    user = request_info.user()
    if user is not None:
        environ["REMOTE_USER"] = user
    if scheme == "https":
        environ["HTTPS"] = "on"
    with request.headers() as fields:
        for name, value in fields.entries():
            text = value.decode("latin-1")
            if name == "content-type":
                key = "CONTENT_TYPE"
            elif name == "content-length":
                key = "CONTENT_LENGTH"
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


class Response:
    """The app's answer on its way out: the head goes with the first
    non-empty piece of the body (PEP 3333), or at the end."""

    def __init__(self, response_out: ResponseOutparam):
        self._out = response_out
        self.status = None
        self.headers = None
        self._body = None
        self._stream = None

    @property
    def head_sent(self) -> bool:
        return self._body is not None

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called twice without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def _send_head(self) -> None:
        if self.status is None:
            raise RuntimeError("the app returned a body before calling start_response")
        code = int(self.status.split(None, 1)[0])
        fields = Fields.from_list([
            (name.lower(), value.encode("latin-1"))
            for name, value in self.headers
            if name.lower() not in HOP_BY_HOP
        ])
        response = OutgoingResponse(fields)
        response.set_status_code(code)
        self._body = response.body()
        ResponseOutparam.set(self._out, Ok(response))
        self._stream = self._body.write()

    def write(self, data: bytes) -> None:
        if not self.head_sent:
            self._send_head()
        for start in range(0, len(data), MAX_WRITE):
            self._stream.blocking_write_and_flush(data[start : start + MAX_WRITE])

    def finish(self) -> None:
        if not self.head_sent:
            self._send_head()
        self._stream.__exit__(None, None, None)
        OutgoingBody.finish(self._body, None)


def internal_error(response_out: ResponseOutparam) -> None:
    response = Response(response_out)
    response.start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
    response.write(b"Internal Server Error\n")
    response.finish()


def serve(app, request: IncomingRequest, response_out: ResponseOutparam) -> None:
    environ = environ_for(request)
    # Over HTTP/2 a body need not have a length, so every request's body
    # is a stream; one without a body ends at once.
    body = io.BufferedReader(RequestBody(request), READ_SIZE)
    environ["wsgi.input"] = body
    response = Response(response_out)
    try:
        result = app(environ, response.start_response)
        try:
            for piece in result:
                if piece:
                    response.write(piece)
        finally:
            if hasattr(result, "close"):
                result.close()
    except Exception:
        # The traceback goes to Apache's error log, as the guest's stderr.
        print(f"uncaught exception in the WSGI app, {environ['REQUEST_METHOD']} "
              f"{environ['SCRIPT_NAME']}{environ['PATH_INFO']}:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        if response.head_sent:
            # Too late for a 500: ending the call cuts the response short.
            raise
        internal_error(response_out)
        return
    finally:
        body.close()
    response.finish()


def load_templates(app) -> int:
    """Compiles every Jinja template a Flask app can find, at build time.

    A componentize-py component has no file system when it runs: only what
    the build imported or read is in the snapshot. So the templates are
    compiled into Jinja's cache now, and the cache is told not to look for
    newer files. Returns how many there were."""
    env = getattr(app, "jinja_env", None)
    if env is None or env.loader is None:
        return 0
    names = env.list_templates()
    env.auto_reload = False
    # The cache must hold them all, or a template evicted is a template lost.
    if env.cache is not None and len(names) > env.cache.capacity:
        env.cache = {}
    for name in names:
        env.get_template(name)
    return len(names)


def incoming_handler(app):
    """The wasi:http/incoming-handler export class for the WSGI app `app`;
    called at build time, when it also loads the app's templates."""
    load_templates(app)

    class IncomingHandler(exports.IncomingHandler):
        def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
            serve(app, request, response_out)

    return IncomingHandler
