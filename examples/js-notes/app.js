// Notes and a visit counter in JavaScript, kept in a key-value store.
//
// Built by componentize-js for the world mod-wasm:host/stateful-guest
// (wit/host.wit): wasi:http for the request, wasi:keyvalue for the store
// the section grants (WasmKeyValue js-notes), wasi:config for the greeting
// (WasmConfigVar greeting ...). The same routes as examples/python-notes,
// below its <Location>:
//
//   GET    /              the greeting, the visit count (an atomic
//                         increment), and the names of the notes
//   PUT    /notes/<name>  keeps the body as the note <name>
//   GET    /notes/<name>  the note, or 404
//   DELETE /notes/<name>  forgets it

import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.12';
import { open } from 'wasi:keyvalue/store@0.2.0-draft2';
import { increment } from 'wasi:keyvalue/atomics@0.2.0-draft2';
import { get as configVar } from 'wasi:config/store@0.2.0-draft-2024-09-27';
import { write as log } from 'mod-wasm:host/log@0.1.0';
import { location } from 'mod-wasm:host/request-info@0.1.0';

const STORE = 'js-notes';
const NOTE = 'note:';
// A note is text for people, not a file store.
const MAX_NOTE = 64 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The body, or null if it is longer than `limit`.
function readBody(request, limit) {
  const body = request.consume();
  const stream = body.stream();
  const pieces = [];
  let size = 0;
  try {
    for (;;) {
      let piece;
      try {
        piece = stream.blockingRead(65536n);
      } catch (error) {
        // The end of the body is the stream's `closed` error.
        if (error.payload?.tag === 'closed') break;
        throw error;
      }
      size += piece.length;
      if (size > limit) return null;
      pieces.push(piece);
    }
  } finally {
    stream[Symbol.dispose]();
    body[Symbol.dispose]();
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const piece of pieces) {
    all.set(piece, offset);
    offset += piece.length;
  }
  return all;
}

function respond(responseOut, status, text = '') {
  const headers = Fields.fromList([
    ['content-type', encoder.encode('text/plain; charset=utf-8')],
  ]);
  const response = new OutgoingResponse(headers);
  response.setStatusCode(status);
  const body = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  if (text) {
    const stream = body.write();
    stream.blockingWriteAndFlush(encoder.encode(text));
    stream[Symbol.dispose]();
  }
  OutgoingBody.finish(body, undefined);
}

function noteNames(bucket) {
  const names = [];
  let cursor;
  do {
    const page = bucket.listKeys(cursor);
    for (const key of page.keys) {
      if (key.startsWith(NOTE)) names.push(key.slice(NOTE.length));
    }
    cursor = page.cursor;
  } while (cursor !== undefined);
  return names.sort();
}

// A store error as a sentence (`other` carries the host's reason).
function why(error) {
  const payload = error.payload;
  if (payload === undefined) throw error;
  return payload.tag === 'other' ? payload.val : payload.tag;
}

function serve(request, responseOut) {
  let path = (request.pathWithQuery() ?? '/').split('?')[0];
  path = path.slice(location().length) || '/';
  const method = request.method().tag;
  const bucket = open(STORE);
  if (path === '/' && method === 'get') {
    const visits = increment(bucket, 'visits', 1n);
    const greeting = configVar('greeting') ?? 'Hello';
    const names = noteNames(bucket).join(', ') || 'none yet';
    respond(responseOut, 200,
      `${greeting} from JavaScript! Visit number ${visits}. Notes: ${names}\n`);
  } else if (path.startsWith('/notes/') && path.length > '/notes/'.length) {
    const key = NOTE + path.slice('/notes/'.length);
    if (method === 'get') {
      const note = bucket.get(key);
      if (note === undefined) {
        respond(responseOut, 404, 'no such note\n');
      } else {
        respond(responseOut, 200, decoder.decode(note));
      }
    } else if (method === 'put') {
      const text = readBody(request, MAX_NOTE);
      if (text === null) {
        respond(responseOut, 413, `a note is at most ${MAX_NOTE} bytes\n`);
      } else {
        bucket.set(key, text);
        respond(responseOut, 204);
      }
    } else if (method === 'delete') {
      bucket.delete(key);
      respond(responseOut, 204);
    } else {
      respond(responseOut, 405, 'GET, PUT or DELETE\n');
    }
  } else {
    respond(responseOut, 404, 'not here\n');
  }
}

export const incomingHandler = {
  handle(request, responseOut) {
    try {
      serve(request, responseOut);
    } catch (error) {
      // The store failed (down, a limit): the log says which and why.
      const reason = why(error);
      log('error', `store ${STORE}: ${reason}`);
      respond(responseOut, 500, `the store failed: ${reason}\n`);
    }
  },
};
