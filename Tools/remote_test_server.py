#!/usr/bin/env python3
"""Helpers for Tests/RemoteTests (standard library only; loopback only).

  remote_test_server.py fake
      A fake OpenAI-compatible server on 127.0.0.1 and a free port, printed as the first line
      of stdout. POST /v1/chat/completions behaves by the request's "model":
        ok            a good streamed (or whole) reply: "Hello" + " world", usage, [DONE]
        garbage       one good delta, then a data line that is not JSON
        truncated     two deltas, then the connection closes (no finish reason, no [DONE])
        mid-error     one delta, then a data line carrying {"error": {...}}
        slow          headers, then one delta every 0.2 s for a minute
        silent        headers and one delta, then nothing for a minute
        hang          reads the request and never answers
        error500      HTTP 500 with an OpenAI error body
        error503      HTTP 503 with a plain-text body
        echo-auth     HTTP 401 whose message repeats the Authorization header it got
        no-stream     a whole JSON reply even when a stream was asked for
        redirect      HTTP 307 to /v1/chat/completions on 127.0.0.1 port 9 (never followed)
      GET /v1/models answers {"data": [{"id": "fake"}]}; GET /fake/closed counts the "slow"
      streams the client closed ({"closed": N}).

  remote_test_server.py guard LOG PROGRAM ARGS...
      Runs PROGRAM with its output to the file LOG and prints its pid as the first line of stdout; kills it (SIGKILL) as soon
      as stdin reaches end of file, so the test's servers die with the test process however it
      ends. Exits with PROGRAM's status.

Both exit when stdin closes.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def exit_when_stdin_closes(on_close):
    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        on_close()
    threading.Thread(target=watch, daemon=True).start()


def chunk(content=None, finish=None):
    delta = {} if content is None else {"content": content}
    return {"object": "chat.completion.chunk", "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


CLOSED_BY_CLIENT = 0
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # bodies end when the connection closes

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def event(self, payload):
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {text}\n\n".encode())
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/fake/closed":
            with LOCK:
                self.send_json(200, {"closed": CLOSED_BY_CLIENT})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        mode = request.get("model", "ok")
        stream = request.get("stream", False)
        try:
            self.reply(mode, stream)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def reply(self, mode, stream):
        if mode == "error500":
            return self.send_json(500, {"error": {"message": "the fake server broke", "type": "server_error"}})
        if mode == "error503":
            data = b"overloaded, try later\n"
            self.send_response(503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if mode == "echo-auth":
            return self.send_json(401, {"error": {"message": f"bad credentials: {self.headers.get('Authorization')}",
                                                  "type": "authentication_error"}})
        if mode == "hang":
            time.sleep(60)
            return
        if mode == "redirect":
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:9/v1/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not stream or mode == "no-stream":
            return self.send_json(200, {"object": "chat.completion", "model": "fake",
                                        "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"role": "assistant", "content": "Hello world"}}],
                                        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
        self.start_stream()
        if mode == "ok":
            self.event(chunk("Hello"))
            self.event(chunk(" world"))
            self.event(chunk(finish="stop"))
            self.event({"object": "chat.completion.chunk", "model": "fake", "choices": [],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
            self.event("[DONE]")
        elif mode == "garbage":
            self.event(chunk("Hel"))
            self.event('{"choices": [{"delta": {"content": "lo"')
            time.sleep(5)
        elif mode == "truncated":
            self.event(chunk("Hel"))
            self.event(chunk("lo"))
        elif mode == "mid-error":
            self.event(chunk("Hel"))
            self.event({"error": {"code": 500, "message": "the fake model ran out of memory", "type": "server_error"}})
        elif mode == "slow":
            global CLOSED_BY_CLIENT
            try:
                for i in range(300):
                    self.event(chunk(f"{i} "))
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                with LOCK:
                    CLOSED_BY_CLIENT += 1
        elif mode == "silent":
            self.event(chunk("Hel"))
            time.sleep(60)


def fake():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    exit_when_stdin_closes(lambda: os._exit(0))
    server.serve_forever()


def guard(log, argv):
    with open(log, "wb") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    print(child.pid, flush=True)

    def kill():
        try:
            child.send_signal(signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    exit_when_stdin_closes(kill)
    status = child.wait()
    sys.stdout.flush()
    os._exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "fake":
        fake()
    elif len(sys.argv) >= 4 and sys.argv[1] == "guard":
        guard(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
