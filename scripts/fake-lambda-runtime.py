#!/usr/bin/env python3
"""A tiny stand-in for the Lambda Runtime API, to time a cold start: process start to the first
response. Used by scripts/bench-coldstart.sh.

For each run it serves one invocation of EVENT_FILE at GET /2018-06-01/runtime/invocation/next,
starts the function binary with AWS_LAMBDA_RUNTIME_API pointing here, records when the response
POST (/2018-06-01/runtime/invocation/<id>/response) has fully arrived, then kills the process.
The clock starts just before the process is spawned, so fork/exec, the dynamic loader, runtime
and logging set-up, settings, the first poll and the handler itself are all inside the figure.

Usage: fake-lambda-runtime.py --event EVENT_FILE [--runs 20] [--warmup 2] [--env K=V ...] -- BINARY [ARGS...]
Prints one line per run and a summary (median, min, max, p90) in milliseconds; with --json FILE,
writes the raw timings too, and with --response FILE the last response body.
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

REQUEST_ID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


class Invocation:
    """One run's shared state between the HTTP server thread and the main thread."""

    def __init__(self, event):
        self.event = event
        self.served = False
        self.response_at = None
        self.response_body = None
        self.error = None
        self.done = threading.Event()


def make_handler(invocation):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/2018-06-01/runtime/invocation/next":
                return self.reply(404, b"{}")
            if invocation.served:
                # The runtime polls again after answering; hold it until the process is killed.
                invocation.done.wait(30)
                return self.reply(410, b"{}")
            invocation.served = True
            deadline = int(time.time() * 1000) + 60_000
            self.reply(
                200,
                invocation.event,
                {
                    "Lambda-Runtime-Aws-Request-Id": REQUEST_ID,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:111122223333:function:eks-audit-forwarder",
                    "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                },
            )

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else self.read_chunked()
            now = time.perf_counter_ns()
            if self.path == f"/2018-06-01/runtime/invocation/{REQUEST_ID}/response":
                invocation.response_at = now
                invocation.response_body = body
            else:
                invocation.error = f"{self.path}: {body[:300]!r}"
            self.reply(202, b'{"status":"OK"}')
            invocation.done.set()

        def read_chunked(self):
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()

        def reply(self, status, body, headers=None):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the function is killed mid-poll on purpose: connection resets are expected


def run_once(binary_args, event, env):
    invocation = Invocation(event)
    server = QuietServer(("127.0.0.1", 0), make_handler(invocation))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    started = time.perf_counter_ns()
    process = subprocess.Popen(binary_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answered = invocation.done.wait(30)
    process.kill()
    _, stderr = process.communicate()
    server.shutdown()
    server.server_close()
    if not answered or invocation.error or invocation.response_at is None:
        sys.exit(f"no response: {invocation.error or 'timeout'}\n{stderr.decode(errors='replace')[-2000:]}")
    return (invocation.response_at - started) / 1e6, invocation.response_body


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the function")
    parser.add_argument("--json")
    parser.add_argument("--response", help="write the last response body here")
    parser.add_argument("binary", nargs="+")
    args = parser.parse_args()
    with open(args.event, "rb") as f:
        event = f.read()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "eks-audit-forwarder",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/eks-audit-forwarder",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/05/21/[$LATEST]0123456789abcdef",
        "AWS_REGION": "eu-west-1",
        "RUST_LOG": "info",
    }
    env.update(kv.split("=", 1) for kv in args.env)
    for _ in range(args.warmup):  # page cache and CPU frequency, not the process, are warmed
        run_once(args.binary, event, env)
    timings = []
    body = None
    for i in range(args.runs):
        elapsed, body = run_once(args.binary, event, env)
        timings.append(elapsed)
        print(f"run {i + 1:2}: {elapsed:7.2f} ms")
    response = json.loads(body)
    results = [r["result"] for r in response.get("records", [])]
    timings_sorted = sorted(timings)
    p90 = timings_sorted[min(len(timings) - 1, int(round(0.9 * (len(timings) - 1))))]
    print(
        f"start to first response over {len(timings)} runs: median {statistics.median(timings):.2f} ms, "
        f"min {timings_sorted[0]:.2f} ms, p90 {p90:.2f} ms, max {timings_sorted[-1]:.2f} ms "
        f"(response: {len(body)} bytes, results {results})"
    )
    if args.response:
        with open(args.response, "wb") as f:
            f.write(body)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"timings_ms": timings, "median_ms": statistics.median(timings)}, f)


if __name__ == "__main__":
    main()
