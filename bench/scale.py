#!/usr/bin/env python3
"""mod_wps at scale (issue 15), one real Apache (event MPM, 2 children) on loopback with the
release module and the file job store:

  async   10,000 asynchronous sleep jobs (delay 0) submitted by `ab -k` from 16 connections:
          time to accept all, time until all succeeded, none lost (every job in the store,
          every one succeeded); WPS 1.0.0 status-document reads per second (wrk, 4
          connections, random jobs) while they run.
  store   100,000 finished jobs in the store (copies of a real finished job's record, the
          index built by the server at start-up): `/wps/api/jobs?limit=10` and status reads
          (WPS 1.0.0 status URL and `/wps/api/jobs/{id}`, random jobs) p50/p99 at 1 and 8
          connections; then a retention sweep of the 100,000 jobs (expired while the server
          runs) with reads going on: p99 during the sweep against idle.

usage: bench/scale.py [async] [store] [--jobs N] [--stored N] [--seconds N] [--module PATH]
A benchmark, not a test: it asserts nothing but that jobs are not lost. Loads are bounded.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BUILT, Apache, wrk  # noqa: E402

SUBMIT = ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep"
          "&DataInputs=delay=0&storeExecuteResponse=true&status=true")


def states(a):
    """Job states by the store's index (one directory listing, no record read)."""
    out = {}
    for _, _, names in os.walk(os.path.join(a.dir, "work", "index")):
        for name in names:
            parts = name.split(".")
            if len(parts) == 4:
                out[parts[1]] = out.get(parts[1], 0) + 1
    return out


def ids(a):
    return [n[:-5] for n in os.listdir(os.path.join(a.dir, "work", "records"))
            if n.endswith(".json") and not n.startswith(".")]


def paths_file(a, lines):
    f = tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False, dir=a.dir)
    f.write("\n".join(lines) + "\n")
    f.close()
    return f.name


def async_scale(module, n, secs):
    a = Apache(module, server_lines="maxprocesses = 1000000")
    try:
        # one job first (the store's directories, the dispatcher awake)
        urllib.request.urlopen(a.url(SUBMIT)).read()
        time.sleep(1)
        before = sum(states(a).values())
        t0 = time.time()
        out = subprocess.run(["ab", "-q", "-k", "-n", str(n), "-c", "16", a.url(SUBMIT)],
                             capture_output=True, text=True, check=True).stdout
        accepted = float(re.search(r"Time taken for tests:\s+([\d.]+)", out).group(1))
        failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
        non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
        refused = failed + (int(non2xx.group(1)) if non2xx else 0)
        st = states(a)
        at_accept = st.get("s", 0) + st.get("f", 0) - before
        # status reads of the new jobs while they run
        paths = paths_file(a, [f"/wps/outputs/{i}.xml" for i in ids(a)])
        rps, p50, p99, bad, errs = wrk(a.url("/"), 4, secs, paths=paths)
        deadline = time.time() + 600
        while time.time() < deadline:
            st = states(a)
            if st.get("s", 0) + st.get("f", 0) >= before + n - refused:
                break
            time.sleep(0.2)
        done = time.time() - t0
        st = states(a)
        stored = sum(st.values()) - before
        print(f"async: {n} sleep jobs (delay 0), ab -k -c 16: accepted in {accepted:.2f} s "
              f"({n / accepted:.0f}/s), {refused} refused; {at_accept} already finished then; "
              f"all finished after {done:.2f} s: {st.get('s', 0) - before} succeeded, "
              f"{st.get('f', 0)} failed, {stored} in the store, {n - refused - stored} lost")
        print(f"  status reads while they ran: {rps:.0f}/s (wrk 4 connections, {secs} s), "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {bad} non-2xx{'  socket errors: ' + errs if errs else ''}")
    finally:
        a.stop()


def fill(a, n, mtime, spacing_ns=300_000):
    """n copies of a real finished job's record, with new ids and keys, modified at mtime.
    Their submit times (in the keys) are `spacing_ns` apart, the newest now: by default as if
    submitted at 3,333 jobs/s, the issue's target rate (the densest the store sees)."""
    records = os.path.join(a.dir, "work", "records")
    with open(os.path.join(records, ids(a)[0] + ".json")) as f:
        template = json.load(f)
    assert template["state"] == "succeeded", template
    base = time.time_ns() - n * spacing_ns
    uid = gid = None
    if os.geteuid() == 0:
        uid, gid = shutil._get_uid("www-data"), shutil._get_gid("www-data")
    out = []
    for k in range(n):
        r = dict(template)
        r["id"] = str(uuid.uuid4())
        r["key"] = f"{base + k * spacing_ns:024}-{r['id']}"
        path = os.path.join(records, r["id"] + ".json")
        with open(path, "w") as f:
            json.dump(r, f)
        os.utime(path, (mtime, mtime))
        if uid is not None:
            os.chown(path, uid, gid)
        out.append(r["id"])
    return out


def latency(a, label, paths, secs):
    for conns in (1, 8):
        rps, p50, p99, bad, errs = wrk(a.url("/"), conns, secs, paths=paths)
        print(f"  {label:44} {conns:>5} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {bad:>7}"
              f"{'  socket errors: ' + errs if errs else ''}")
        sys.stdout.flush()


def restart_with(a, retention):
    """Stops the server, lets the caller change the store, and starts it again with
    `retention` (None: none) in the service config."""
    a.ctl("stop")
    pid_file = os.path.join(a.dir, "httpd.pid")
    while os.path.exists(pid_file):
        time.sleep(0.1)
    cfg = os.path.join(a.dir, "wps.cfg")
    text = re.sub(r"(?m)^retention = .*\n", "", open(cfg).read())
    if retention:
        text = text.replace("[server]\n", f"[server]\nretention = {retention}\n")
    open(cfg, "w").write(text)


def start(a):
    t = time.time()
    a.ctl("start")
    a.wait("/wps?service=WPS&request=GetCapabilities", 600)
    return time.time() - t


def store_scale(module, n, secs):
    a = Apache(module, server_lines="maxprocesses = 1000000")
    try:
        doc = urllib.request.urlopen(a.url(SUBMIT)).read().decode()
        job = re.search(r'statusLocation="[^"]*/outputs/([0-9a-f-]+)\.xml"', doc).group(1)
        while b"ProcessSucceeded" not in urllib.request.urlopen(a.url(f"/wps/outputs/{job}.xml")).read():
            time.sleep(0.1)
        restart_with(a, None)
        t = time.time()
        fill(a, n - 1, time.time())
        made = time.time() - t
        shutil.rmtree(os.path.join(a.dir, "work", "index"))
        up = start(a)
        all_ids = ids(a)
        print(f"store: {len(all_ids)} finished jobs (records written in {made:.0f} s); server start "
              f"with the index built from them: {up:.1f} s")
        print(f"  {'request':44} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7}")
        latency(a, "/wps/api/jobs?limit=10", paths_file(a, ["/wps/api/jobs?limit=10"]), secs)
        latency(a, "/wps/api/jobs?limit=10&offset=50000",
                paths_file(a, ["/wps/api/jobs?limit=10&offset=50000"]), secs)
        latency(a, "WPS 1.0.0 status document (random job)",
                paths_file(a, [f"/wps/outputs/{i}.xml" for i in all_ids]), secs)
        latency(a, "/wps/api/jobs/{id} (random job)",
                paths_file(a, [f"/wps/api/jobs/{i}" for i in all_ids]), secs)

        # retention: the n jobs expire about 65 s after the restart, 1,000 fresh ones stay
        restart_with(a, "2m")
        expire_in = 40
        for i in all_ids:
            p = os.path.join(a.dir, "work", "records", i + ".json")
            os.utime(p, (time.time() - 120 + expire_in,) * 2)
        fresh = fill(a, 1000, time.time())
        t0 = time.time()
        start(a)
        status = paths_file(a, [f"/wps/outputs/{i}.xml" for i in fresh])
        listing = paths_file(a, ["/wps/api/jobs?limit=10"])
        # idle: no sweep due yet (the first one at start-up found nothing expired); measured
        # in 1-second slices like the sweep, so that the two are compared alike
        idle = []
        while time.time() < t0 + 55:
            idle.append([wrk(a.url("/"), 8, 1, paths=p) for p in (status, listing)])
        records = os.path.join(a.dir, "work", "records")

        def count():
            return sum(1 for _ in os.scandir(records))
        # then 1-second slices until the sweep has come and gone
        slices = []
        while time.time() < t0 + 60 + expire_in + 600:
            c0, s0 = count(), time.time() - t0
            r = [wrk(a.url("/"), 8, 1, paths=p) for p in (status, listing)]
            c1 = count()
            slices.append((s0, c0, c1, r))
            if c1 < 2000 and c0 < 2000 and any(c[1] > c[2] for c in slices):
                break
        during = [s for s in slices if s[1] > s[2]]
        gone = count()
        print(f"  retention sweep of {len(all_ids)} expired jobs (retention = 2m, checked every "
              f"minute by each child's dispatcher) while reads go on, 8 connections, 1-second slices "
              f"({len(idle)} idle before the sweep):")
        if during:
            print(f"  sweep seen from {during[0][0]:.0f} s to {during[-1][0] + 2:.0f} s after start; "
                  f"{gone} records left ({len(fresh)} fresh + others)")

        def median(v):  # the upper one of an even number
            return statistics.median_high(v) if v else 0
        for k, what in enumerate(("WPS 1.0.0 status document (fresh job)", "/wps/api/jobs?limit=10")):
            ip99 = [s[k][2] for s in idle]
            dp99 = [s[3][k][2] for s in during]
            imed, dmed = median(ip99), median(dp99)
            irps = sum(s[k][0] for s in idle) / len(idle) if idle else 0
            drps = sum(s[3][k][0] for s in during) / len(during) if during else 0
            dbad = sum(s[3][k][3] for s in during) + sum(s[k][3] for s in idle)
            ratio = dmed / imed if imed else 0
            print(f"  {what}: idle {irps:.0f}/s, p99 median {imed:.2f} ms, worst "
                  f"{max(ip99, default=0):.2f} ms; during the sweep {drps:.0f}/s, p99 median "
                  f"{dmed:.2f} ms ({ratio:.1f}x idle), worst {max(dp99, default=0):.2f} ms; "
                  f"{dbad} non-2xx")
    finally:
        a.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="*", default=["async", "store"])
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--stored", type=int, default=100000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--module", default=BUILT)
    args = ap.parse_args()
    module = os.path.abspath(args.module)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"mod_wps at scale: {os.cpu_count()} cores, load average {' '.join(load)} at the start")
    if "async" in args.what:
        async_scale(module, args.jobs, args.seconds)
    if "store" in args.what:
        store_scale(module, args.stored, args.seconds)


if __name__ == "__main__":
    main()
