"""An ordinary Flask app, unchanged for mod_wasm: `mod_wasm build-python
app:app -r requirements.txt -o flask_app.wasm` makes it a component
(docs/existing-apps.md). Nothing here knows about Wasm.

    GET  /                 a page from a template
    GET  /hello            text (the bench's row)
    GET  /users/<id>       JSON about one user (a path parameter)
    POST /api/echo         a JSON body back, with its keys counted
    POST /greet            a form post
    POST /upload           the size and SHA-256 of a body of any length,
                           read in pieces
    GET  /count/<n>        n lines, streamed as they are made
    GET  /fail             an exception in a view: Flask answers 500 and
                           logs the traceback
"""

import hashlib

from flask import Flask, Response, jsonify, render_template, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index():
    return render_template("index.html", title="Flask on mod_wasm", agent=request.user_agent.string)


@app.get("/hello")
def hello():
    return "Hello from Flask!\n"


@app.get("/users/<int:user_id>")
def user(user_id: int):
    return jsonify(id=user_id, name=f"user {user_id}", url=request.url)


@app.post("/api/echo")
def echo():
    data = request.get_json()
    return jsonify(received=data, keys=len(data) if isinstance(data, dict) else None)


@app.post("/greet")
def greet():
    return render_template("greet.html", name=request.form.get("name", "stranger"))


@app.post("/upload")
def upload():
    digest, size = hashlib.sha256(), 0
    while piece := request.stream.read(1 << 16):
        digest.update(piece)
        size += len(piece)
    return jsonify(bytes=size, sha256=digest.hexdigest())


@app.get("/count/<int:n>")
def count(n: int):
    def lines():
        for i in range(n):
            yield f"line {i}\n"

    return Response(stream_with_context(lines()), mimetype="text/plain")


@app.get("/fail")
def fail():
    raise RuntimeError("this view fails on purpose")
