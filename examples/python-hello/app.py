"""A wasi:http handler in Python, built into a component by componentize-py.

It answers with the method, the path and the size of the request body, and
echoes the body back: the body is read and written in pieces, as streams.
It also asks Apache (mod-wasm:host, world mod-wasm:host/guest) which
<Location> serves it, and says so in a header.
"""

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

# The most blocking_write_and_flush takes in one call.
MAX_WRITE = 4096


def method_name(method) -> str:
    """`Method_Get()` -> "GET", `Method_Other("PURGE")` -> "PURGE"."""
    value = getattr(method, "value", None)
    if isinstance(value, str):
        return value
    return type(method).__name__.removeprefix("Method_").upper()


def read_body(request: IncomingRequest) -> bytes:
    pieces = []
    with request.consume() as body:
        with body.stream() as stream:
            while True:
                try:
                    pieces.append(stream.blocking_read(65536))
                except Err as error:
                    if isinstance(error.value, StreamError_Closed):
                        break
                    raise
    return b"".join(pieces)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = method_name(request.method())
        path = request.path_with_query() or "/"
        body = read_body(request)
        text = f"Hello from Python! {method} {path}, {len(body)} bytes of body\n".encode()

        headers = Fields.from_list([
            ("content-type", b"text/plain; charset=utf-8"),
            ("x-location", request_info.location().encode()),
        ])
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        response_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with response_body.write() as stream:
            for data in (text, body):
                for start in range(0, len(data), MAX_WRITE):
                    stream.blocking_write_and_flush(data[start : start + MAX_WRITE])
        OutgoingBody.finish(response_body, None)
