"""Cold start of each Lambda function, measured locally (a script, not a test).

A small Lambda Runtime API of our own (the endpoints a custom runtime uses: next invocation,
response, error, init error) serves one event from events/ to a freshly started release
binary of each function, several times, interleaved:

  init   process start -> its first GET /runtime/invocation/next (the process is ready)
  first  that GET -> the response (or error) POST: the first invocation, SDK clients built on
         first use, against the local AWS emulator (moto) with a bootstrapped environment

Prints a markdown table of medians. Usage (scripts/bench-coldstart runs it):
  bench-coldstart.py TARGET_DIR REPS
with AWS_ENDPOINT_URL and SLUICE_ENV set for a bootstrapped emulator environment.
"""
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

FUNCTIONS = {
    # function: the event it gets (events/), chosen to run its real first work
    "in-progress-check": "in-progress-check-release.json",
    "queue-generator": "queue-generator.json",
    "ingest": "ingest.json",
    "normalize": "normalize-manual.json",
    "load": "load-manual.json",
    "notify": "notify-summary.json",
    "extract": "extract.json",
}

target, reps = sys.argv[1], int(sys.argv[2])
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Runtime(http.server.BaseHTTPRequestHandler):
    """One invocation's Runtime API; the first GET /next gets the event, later ones wait."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        s = self.server
        if self.path.endswith("/runtime/invocation/next"):
            if s.served:
                time.sleep(30)  # one invocation per process; the harness kills it
                return
            s.served = True
            s.t_next = time.perf_counter()
            body = s.event
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:us-east-1:000000000000:function:{s.name}")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def do_POST(self):
        s = self.server
        n = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(n)
        s.t_done = time.perf_counter()
        s.outcome = "error" if self.path.endswith("/error") else "ok"
        s.payload = payload[:300].decode("utf-8", "replace")
        self.send_response(202)
        self.end_headers()
        s.done.set()


def once(name, event):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    server.name, server.event, server.served = name, event, False
    server.t_next = server.t_done = None
    server.done = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
    })
    t0 = time.perf_counter()
    p = subprocess.Popen([os.path.join(target, "release", name)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = server.done.wait(120)
    p.kill()
    p.wait()
    server.shutdown()
    if not finished or server.t_next is None:
        sys.exit(f"bench-coldstart: {name} gave no answer within 120 s")
    return (server.t_next - t0) * 1000, (server.t_done - server.t_next) * 1000, server.outcome, server.payload


results = {n: [] for n in FUNCTIONS}
for _ in range(reps):
    for name, event_file in FUNCTIONS.items():
        event = open(os.path.join(root, "events", event_file), "rb").read()
        results[name].append(once(name, event))

print(f"\ncold start, median of {reps} interleaved run(s) per function (release build on this machine)\n")
print("| function | event | init ms | first invocation ms | outcome |")
print("| --- | --- | ---: | ---: | --- |")
for name, runs in results.items():
    init = statistics.median(r[0] for r in runs)
    first = statistics.median(r[1] for r in runs)
    outcomes = sorted({r[2] for r in runs})
    note = outcomes[0] if outcomes == ["ok"] else "error: " + runs[-1][3].replace("|", "/")[:120]
    print(f"| {name} | {FUNCTIONS[name]} | {init:.1f} | {first:.1f} | {note} |")
def error_type(payload):
    """The error's name from a Runtime API error body (`{"errorType": ...}`), else its start."""
    m = re.search(r'"errorType"\s*:\s*"([^"]+)"', payload)
    return "error: " + (m.group(1) if m else payload[:60])


if os.environ.get("SLUICE_BENCH_JSONL"):  # scripts/bench collects every stage's medians
    with open(os.environ["SLUICE_BENCH_JSONL"], "a") as f:
        for name, runs in results.items():
            f.write(json.dumps({
                "coldstart": name, "event": FUNCTIONS[name],
                "init_ms": statistics.median(r[0] for r in runs),
                "first_ms": statistics.median(r[1] for r in runs),
                "outcome": "ok" if {r[2] for r in runs} == {"ok"} else error_type(runs[-1][3]),
                "binary_mib": os.path.getsize(os.path.join(target, "release", name)) / 2**20}) + "\n")
