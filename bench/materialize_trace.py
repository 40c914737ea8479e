#!/usr/bin/env python3
"""One `larder materialize` run, with the CPU use of Larder and of Redis every 100 ms.

Shows whether Redis is kept busy (the write path's limit) and from when: before Larder wrote
while it read, Redis sat idle until the whole scan was done.

    bench/materialize_trace.py --larder target/bench-fast/larder --repo DIR --redis-port PORT \
        [START END]

The repo must name the Redis at ${REDIS_ADDR} (as bench/materialize.sh's does) and hold its
registry already; the Redis is FLUSHALLed first: start your own (never point this at a server
you care about). bench/materialize.sh sets both up; so does this recipe:

    redis-server --port 6401 --bind 127.0.0.1 --save "" --appendonly no &
    cp -r tests/fixtures/feast_driver_repo /tmp/repo && mkdir -p /tmp/repo/data
    target/bench-fast/larder example-data --drivers 100000 --hours 10 \
        --out /tmp/repo/data/driver_stats.parquet
    (cd /tmp/repo && ~/.cache/larder/venv/bin/feast apply)
"""
import argparse
import os
import subprocess
import time


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--larder", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("window", nargs="*", default=["2000-01-01T00:00:00", "2030-01-01T00:00:00"])
    a = p.parse_args()
    redis_pid = None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline").read()
        except OSError:
            continue
        if cmdline.startswith("redis-server") and f":{a.redis_port}" in cmdline:
            redis_pid = int(pid)
    if redis_pid is None:
        raise SystemExit(f"no redis-server on port {a.redis_port}")
    subprocess.run(["redis-cli", "-p", str(a.redis_port), "flushall"], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, REDIS_ADDR=f"127.0.0.1:{a.redis_port}")
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.time()
    proc = subprocess.Popen([os.path.abspath(a.larder), "materialize", "--repo", ".", *a.window], cwd=a.repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prev = (t0, cpu_ticks(redis_pid), 0)
    lines = []
    while proc.poll() is None:
        time.sleep(0.1)
        try:
            mine = cpu_ticks(proc.pid)
        except OSError:
            break
        now, theirs = time.time(), cpu_ticks(redis_pid)
        dt = now - prev[0]
        lines.append(f"{now - t0:5.2f} s  redis {100 * (theirs - prev[1]) / hz / dt:4.0f}%  "
                     f"larder {100 * (mine - prev[2]) / hz / dt:4.0f}%")
        prev = (now, theirs, mine)
    if proc.wait() != 0:
        raise SystemExit(f"larder materialize failed ({proc.returncode})")
    print(f"total {time.time() - t0:.2f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
