"""Notes and a visit counter in Python, kept in a key-value store.

Built by componentize-py for the world mod-wasm:host/stateful-guest
(wit/host.wit): wasi:http for the request, wasi:keyvalue for the store the
section grants (WasmKeyValue python-notes), wasi:config for the greeting
(WasmConfigVar greeting ...). Below its <Location>:

    GET    /              the greeting, the visit count (an atomic
                          increment), and the names of the notes
    PUT    /notes/<name>  keeps the body as the note <name>
    GET    /notes/<name>  the note, or 404
    DELETE /notes/<name>  forgets it

Every instance is fresh: what it remembers is in the store, shared by
every Apache child (and, on Redis, every server).
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, log, request_info
from wit_world.imports import wasi_config_store as config
from wit_world.imports import wasi_keyvalue_store as store
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Put,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

STORE = "python-notes"
NOTE = "note:"
# A note is text for people, not a file store.
MAX_NOTE = 64 * 1024


def read_body(request: IncomingRequest, limit: int) -> bytes | None:
    """The body, or None if it is longer than `limit`."""
    pieces, size = [], 0
    with request.consume() as body:
        with body.stream() as stream:
            while True:
                try:
                    piece = stream.blocking_read(65536)
                except Err as error:
                    if isinstance(error.value, StreamError_Closed):
                        break
                    raise
                size += len(piece)
                if size > limit:
                    return None
                pieces.append(piece)
    return b"".join(pieces)


def respond(response_out: ResponseOutparam, status: int, text: str = "") -> None:
    headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    if text:
        with body.write() as stream:
            stream.blocking_write_and_flush(text.encode())
    OutgoingBody.finish(body, None)


def note_names(bucket: store.Bucket) -> list[str]:
    names, cursor = [], None
    while True:
        page = bucket.list_keys(cursor)
        names += [key[len(NOTE):] for key in page.keys if key.startswith(NOTE)]
        cursor = page.cursor
        if cursor is None:
            return sorted(names)


def why(error: Err) -> str:
    """A store error as a sentence (`other` carries the host's reason)."""
    value = error.value
    return getattr(value, "value", None) or type(value).__name__.removeprefix("Error_")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?")[0]
        path = path[len(request_info.location()):] or "/"
        method = request.method()
        try:
            bucket = store.open(STORE)
            if path == "/" and isinstance(method, Method_Get):
                visits = atomics.increment(bucket, "visits", 1)
                greeting = config.get("greeting") or "Hello"
                names = ", ".join(note_names(bucket)) or "none yet"
                respond(response_out, 200,
                        f"{greeting} from Python! Visit number {visits}. Notes: {names}\n")
            elif path.startswith("/notes/") and len(path) > len("/notes/"):
                key = NOTE + path[len("/notes/"):]
                if isinstance(method, Method_Get):
                    note = bucket.get(key)
                    if note is None:
                        respond(response_out, 404, "no such note\n")
                    else:
                        respond(response_out, 200, note.decode(errors="replace"))
                elif isinstance(method, Method_Put):
                    text = read_body(request, MAX_NOTE)
                    if text is None:
                        respond(response_out, 413, f"a note is at most {MAX_NOTE} bytes\n")
                    else:
                        bucket.set(key, text)
                        respond(response_out, 204)
                elif isinstance(method, Method_Delete):
                    bucket.delete(key)
                    respond(response_out, 204)
                else:
                    respond(response_out, 405, "GET, PUT or DELETE\n")
            else:
                respond(response_out, 404, "not here\n")
        except Err as error:
            # The store failed (down, a limit): the log says which and why.
            log.write(log.Level.ERROR, f"store {STORE}: {why(error)}")
            respond(response_out, 500, f"the store failed: {why(error)}\n")
