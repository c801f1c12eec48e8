// An ordinary Hono app, unchanged for mod_wasm: `npm ci` here, then
// `mod_wasm build-js app.js -o hono_app.wasm` makes it a component
// (docs/existing-apps.md). Nothing here knows about Wasm.
//
//   GET  /              text
//   GET  /hello         text (the bench's row)
//   GET  /users/:id     JSON about one user (a path parameter)
//   POST /api/echo      a JSON body back, with its keys counted
//   POST /greet         a form post
//   POST /upload        the size and SHA-256 of a body of any length,
//                       read as a stream
//   GET  /count/:n      n lines, streamed as they are made
//   GET  /fail          an exception in a handler: Hono answers 500 and
//                       logs it

import { Hono } from 'hono';
import { stream } from 'hono/streaming';

// Below its <Location>: a Wasm app sees the whole path Apache was asked for.
const app = new Hono({ strict: false }).basePath('/hono');

app.get('/', (c) => c.text('Hello from Hono!\n'));
app.get('/hello', (c) => c.text('Hello from Hono!\n'));

app.get('/users/:id', (c) => {
  const id = c.req.param('id');
  return c.json({ id, name: `user ${id}`, url: c.req.url });
});

app.post('/api/echo', async (c) => {
  const received = await c.req.json();
  return c.json({ received, keys: Object.keys(received).length });
});

app.post('/greet', async (c) => {
  const form = await c.req.parseBody();
  return c.html(`<p>Hello, ${escape(String(form.name ?? 'stranger'))}!</p>`);
});

app.post('/upload', async (c) => {
  const reader = c.req.raw.body.getReader();
  let bytes = 0;
  const pieces = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    pieces.push(value);
  }
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const piece of pieces) {
    all.set(piece, at);
    at += piece.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  const sha256 = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  return c.json({ bytes, sha256 });
});

app.get('/count/:n', (c) => {
  const n = Number(c.req.param('n'));
  c.header('content-type', 'text/plain');
  return stream(c, async (out) => {
    for (let i = 0; i < n; i++) await out.write(`line ${i}\n`);
  });
});

app.get('/fail', () => {
  throw new Error('this handler fails on purpose');
});

app.onError((error, c) => {
  // SpiderMonkey's stack has the frames only, not the message.
  console.error(`${c.req.method} ${c.req.path}: ${error}\n${error.stack}`);
  return c.text('Internal Server Error\n', 500);
});

function escape(text) {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

export default app;
