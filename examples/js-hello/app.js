// A wasi:http handler in JavaScript, built into a component by
// componentize-js. It exports wasi:http/incoming-handler itself, against
// the same WASI WIT as the host, and answers with the method, the path and
// the size of the request body, then echoes the body back.

import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.12';

// The most blockingWriteAndFlush takes in one call.
const MAX_WRITE = 4096;
const encoder = new TextEncoder();

function readBody(request) {
  const body = request.consume();
  const stream = body.stream();
  const pieces = [];
  let size = 0;
  for (;;) {
    let piece;
    try {
      piece = stream.blockingRead(65536n);
    } catch (error) {
      // The end of the body is the stream's `closed` error.
      if (error.payload?.tag === 'closed') break;
      throw error;
    }
    pieces.push(piece);
    size += piece.length;
  }
  stream[Symbol.dispose]();
  body[Symbol.dispose]();
  const all = new Uint8Array(size);
  let offset = 0;
  for (const piece of pieces) {
    all.set(piece, offset);
    offset += piece.length;
  }
  return all;
}

function methodName(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

export const incomingHandler = {
  handle(request, responseOut) {
    const method = methodName(request.method());
    const path = request.pathWithQuery() ?? '/';
    const body = readBody(request);
    const greeting = encoder.encode(
      `Hello from JavaScript! ${method} ${path}, ${body.length} bytes of body\n`,
    );

    const headers = Fields.fromList([
      ['content-type', encoder.encode('text/plain; charset=utf-8')],
    ]);
    const response = new OutgoingResponse(headers);
    response.setStatusCode(200);
    const responseBody = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = responseBody.write();
    for (const data of [greeting, body]) {
      for (let start = 0; start < data.length; start += MAX_WRITE) {
        stream.blockingWriteAndFlush(data.subarray(start, start + MAX_WRITE));
      }
    }
    stream[Symbol.dispose]();
    OutgoingBody.finish(responseBody, undefined);
  },
};
