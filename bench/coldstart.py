#!/usr/bin/env python3
"""Cold start of a Lambda function binary: from process start to its first poll for an event.

Stands in for the Lambda Runtime API with a loopback HTTP server that only notes when the
function first asks for an event (GET /2018-06-01/runtime/invocation/next). Everything the
function does at init (configuration, registry load, Redis connect + PING) happens before that
poll, so the time from spawning the process to the poll is the function's own cold start
(Lambda's sandbox and download of the code come on top and are not the binary's to cut).

    coldstart.py BINARY [RUNS]      environment (LARDER_*, REDIS_ADDR...) is passed through

Prints each run and the median in milliseconds.
"""
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
polled = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            polled.t = time.monotonic()
            polled.set()
            time.sleep(30)  # never answer: the function waits for an event until it is killed
        self.send_error(404)

    def do_POST(self):
        # An init error report: the function failed to start.
        length = int(self.headers.get("content-length", 0))
        print("init error:", self.rfile.read(length).decode(errors="replace"), file=sys.stderr)
        self.send_response(202)
        self.end_headers()
        polled.error = True
        polled.set()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ)
env.update(
    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
    AWS_LAMBDA_FUNCTION_NAME="coldstart",
    AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
    AWS_LAMBDA_LOG_GROUP_NAME="coldstart",
    AWS_LAMBDA_LOG_STREAM_NAME="coldstart",
    AWS_REGION=env.get("AWS_REGION", "us-east-1"),
)

times = []
for i in range(runs):
    polled.clear()
    polled.error = False
    t0 = time.monotonic()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = polled.wait(10)
    proc.kill()
    _, err = proc.communicate()
    if not ok or polled.error:
        sys.exit(f"coldstart: {binary} did not reach its first poll:\n{err.decode(errors='replace')}")
    times.append((polled.t - t0) * 1000)
    print(f"run {i + 1}: {times[-1]:.1f} ms")
print(f"cold start (process start to first poll): median {statistics.median(times):.1f} ms, "
      f"min {min(times):.1f} ms over {runs} runs")
