// Serves a web-standard fetch handler as wasi:http/incoming-handler, for
// `mod_wasm build-js` (docs/existing-apps.md). The app is either a module
// whose default export has `fetch(request)` (Hono, itty-router, the
// Cloudflare Workers module style) or a script that calls
// `addEventListener('fetch', ...)` (the Service Worker style, Hono's
// `app.fire()`).
//
// StarlingMonkey has its own fetch-event export, but it answers only the
// first request of an instance (WasmInstanceReuse gets no response after
// that), so this module exports the handler itself and drives the app's
// promise to completion within each call.

import {
  Fields,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.12';

// The most blockingWriteAndFlush takes in one call.
const MAX_WRITE = 4096;
const READ_SIZE = 65536n;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Headers a wasi:http response may not carry: Apache writes its own
// framing and connection management.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host',
  'http2-settings', 'content-length',
]);

// Service Worker style: the app registers its listener while this bundle
// evaluates, after this module (the entry imports it first).
let fetchListener = null;
const builtinAddEventListener = globalThis.addEventListener;
globalThis.addEventListener = function addEventListener(type, listener, ...rest) {
  if (type === 'fetch') {
    fetchListener = listener;
  } else if (builtinAddEventListener) {
    builtinAddEventListener.call(globalThis, type, listener, ...rest);
  }
};

function methodName(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

function schemeName(scheme) {
  if (!scheme) return 'http';
  if (scheme.tag === 'other') return scheme.val;
  return scheme.tag.toLowerCase();
}

// The request body as a ReadableStream that reads from Apache as the app
// pulls, so a large upload is never held whole.
function bodyStream(request) {
  const body = request.consume();
  const stream = body.stream();
  const done = () => {
    stream[Symbol.dispose]();
    body[Symbol.dispose]();
  };
  return new ReadableStream({
    pull(controller) {
      let piece;
      try {
        piece = stream.blockingRead(READ_SIZE);
      } catch (error) {
        done();
        if (error.payload?.tag === 'closed') {
          controller.close();
        } else {
          controller.error(new Error(`reading the request body: ${error.payload?.tag ?? error}`));
        }
        return;
      }
      if (piece.length > 0) controller.enqueue(piece);
    },
    cancel: done,
  });
}

function toRequest(incoming) {
  const method = methodName(incoming.method());
  const fields = incoming.headers();
  const headers = new Headers();
  for (const [name, value] of fields.entries()) headers.append(name, decoder.decode(value));
  fields[Symbol.dispose]();
  const authority = incoming.authority() ?? headers.get('host') ?? 'localhost';
  const url = `${schemeName(incoming.scheme())}://${authority}${incoming.pathWithQuery() ?? '/'}`;
  const init = { method, headers };
  if (method !== 'GET' && method !== 'HEAD') {
    init.body = bodyStream(incoming);
    init.duplex = 'half';
  }
  return new Request(url, init);
}

// What the app answers `request` with, as a promise of a Response.
function appResponse(app, request) {
  const handler = app.default?.fetch ? app.default : app;
  if (typeof handler.fetch === 'function') {
    return Promise.resolve(handler.fetch(request, {}, { waitUntil() {}, passThroughOnException() {} }));
  }
  if (fetchListener === null) {
    throw new Error('the app neither exports fetch() nor adds a fetch event listener');
  }
  return new Promise((resolve, reject) => {
    let answered = false;
    const event = {
      request,
      respondWith(response) {
        answered = true;
        Promise.resolve(response).then(resolve, reject);
      },
      waitUntil() {},
    };
    fetchListener.call(globalThis, event);
    if (!answered) reject(new Error('the fetch listener did not call respondWith()'));
  });
}

function responseFields(headers) {
  const list = [];
  for (const [name, value] of headers) {
    if (HOP_BY_HOP.has(name) || name === 'set-cookie') continue;
    list.push([name, encoder.encode(value)]);
  }
  // Headers joins repeated fields with commas, which cookies cannot take.
  for (const cookie of headers.getSetCookie?.() ?? []) list.push(['set-cookie', encoder.encode(cookie)]);
  return Fields.fromList(list);
}

function write(stream, data) {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  for (let start = 0; start < bytes.length; start += MAX_WRITE) {
    stream.blockingWriteAndFlush(bytes.subarray(start, start + MAX_WRITE));
  }
}

async function send(response, responseOut) {
  const outgoing = new OutgoingResponse(responseFields(response.headers));
  outgoing.setStatusCode(response.status);
  const body = outgoing.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: outgoing });
  const stream = body.write();
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      write(stream, value);
    }
  }
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
}

function failure(error) {
  console.error(`uncaught error in the fetch handler: ${error}\n${error?.stack ?? ''}`);
  return new Response('Internal Server Error\n', {
    status: 500,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}

// The incoming-handler export for `app`, the app module's namespace.
export function incomingHandlerFor(app) {
  return {
    async handle(incoming, responseOut) {
      let response;
      try {
        response = await appResponse(app, toRequest(incoming));
        if (!(response instanceof Response)) throw new Error(`the app answered ${response}, not a Response`);
      } catch (error) {
        response = failure(error);
      }
      // An error once the head is out cannot become a 500: it ends the
      // call, and Apache cuts the response short.
      await send(response, responseOut);
    },
  };
}
