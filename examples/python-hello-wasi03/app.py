"""A WASI 0.3 wasi:http handler in Python (world wasi:http/service@0.3.0),
built into a component by componentize-py.

`handle` is a coroutine: it returns the response at once, and a task it
spawns writes the body afterwards, as every 0.3 guest does (the body is a
`stream<u8>` the host reads while the task writes). The body is a greeting
line with the method and the path, then the request body echoed back as it
arrives, piece by piece, and the request's trailers as the response's.
"""

from componentize_py_async_support import spawn
from componentize_py_async_support.futures import FutureReader, FutureWriter
from componentize_py_async_support.streams import ByteStreamReader, ByteStreamWriter
from componentize_py_types import Ok
from wit_world import byte_stream, exports
from wit_world import result_option_wasi_http_types_fields_wasi_http_types_error_code_future as trailers_future
from wit_world import result_unit_wasi_http_types_error_code_future as outcome_future
from wit_world.imports.wasi_http_types import Fields, Request, Response

# The most one read asks of the request body.
PIECE = 65536


def method_name(method) -> str:
    """`Method_Get()` -> "GET", `Method_Other("PURGE")` -> "PURGE"."""
    value = getattr(method, "value", None)
    if isinstance(value, str):
        return value
    return type(method).__name__.removeprefix("Method_").upper()


async def write_body(
    greeting: bytes,
    body_in: ByteStreamReader,
    trailers_in: FutureReader,
    body_out: ByteStreamWriter,
    trailers_out: FutureWriter,
) -> None:
    with body_out, body_in:
        await body_out.write_all(greeting)
        while not body_in.writer_dropped:
            piece = await body_in.read(PIECE)
            if piece:
                await body_out.write_all(piece)
    # The body's end is the stream's end; its trailers come after it.
    await trailers_out.write(await trailers_in.read())


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        method = method_name(request.get_method())
        path = request.get_path_with_query() or "/"
        greeting = f"Hello from Python on WASI 0.3! {method} {path}\n".encode()

        # The future this guest would resolve to say how reading the body
        # went: dropped unwritten, it says "fine".
        _, read_outcome = outcome_future(lambda: Ok(None))
        body_in, trailers_in = Request.consume_body(request, read_outcome)

        body_out, body = byte_stream()
        trailers_out, trailers = trailers_future(lambda: Ok(None))
        headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        response, _delivered = Response.new(headers, body, trailers)
        spawn(write_body(greeting, body_in, trailers_in, body_out, trailers_out))
        return response
