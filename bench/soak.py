#!/usr/bin/env python3
"""mod_wps soak (issue 15): one real Apache (event MPM, 2 children) on loopback with the
release module, under mixed load for 10 minutes with a graceful restart every minute.

Load (wrk, 8 keep-alive connections, each pausing 10 ms between requests, so the machine is
busy but not saturated): in turn GetCapabilities, synchronous say_hello (KVP), an XML POST
of feature_count whose layer is a reference to a loopback HTTP server (a second process
serving tests/data/polygons.gml; `allowedhosts = 127.0.0.1`), and an asynchronous sleep job
(delay 0). Every 10 s: RSS and open file descriptors of the parent and of each child. At the
end: errors (non-2xx, socket errors), and every asynchronous job in the store succeeded.

RSS growth is taken after warm-up (the first minute and the first graceful restart, which
loads the module into the parent a second time): the parent's from its first sample
after warm-up to its last, and the children's as the mean RSS of the children of each
generation at its last sample (a generation lives one minute), first generation after
warm-up against the last.

Socket read errors at the restarts are keep-alive connections the old children close while
the client is about to send on them; `--control` measures them for Apache's own static file
and for mod_wps's GetCapabilities under the same load and restarts (60 s, 5 restarts each).

`--slots N` sets `parallelprocesses` (default unlimited), so that synchronous requests wait
in line for a slot; `--store pg` keeps the jobs in a throwaway PostgreSQL cluster (as
bench/jobstore.py) instead of the file store, and also reports the database's commits per
second once the load stopped and the rows left in the line for a slot.

usage: bench/soak.py [--minutes N] [--restart-every S] [--slots N] [--store file|pg]
                     [--control] [--module PATH]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, BUILT, Apache, proc_status, free_port, to_ms  # noqa: E402

FEATURE_COUNT_REF = """<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
<ows:Identifier>feature_count</ows:Identifier>
<wps:DataInputs><wps:Input><ows:Identifier>layer</ows:Identifier><wps:Reference mimeType="application/gml+xml" xlink:href="{href}"/></wps:Input></wps:DataInputs>
<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>count</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>
</wps:Execute>"""


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return None


def lua(ref_body_file):
    q = "/wps?service=WPS&version=1.0.0&request="
    return f"""
local f = io.open("{ref_body_file}", "rb")
local ref = f:read("*a")
f:close()
local reqs = {{}}
init = function(args)
  reqs = {{
  wrk.format("GET", "/wps?service=WPS&request=GetCapabilities"),
  wrk.format("GET", "{q}Execute&identifier=say_hello&DataInputs=name=soak"),
  wrk.format("POST", "/wps", {{["Content-Type"] = "text/xml"}}, ref),
  wrk.format("GET", "{q}Execute&identifier=sleep&DataInputs=delay=0&storeExecuteResponse=true&status=true"),
  }}
end
local n = 0
request = function()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end
delay = function() return 10 end
"""


def control(module):
    """Socket errors across graceful restarts: the static file against mod_wps."""
    import urllib.request
    a = Apache(module)
    try:
        caps = urllib.request.urlopen(a.url("/wps?service=WPS&request=GetCapabilities")).read()
        path = os.path.join(a.dir, "htdocs", "caps.xml")
        with open(path, "wb") as f:
            f.write(caps)
        os.chmod(path, 0o644)
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, dir=a.dir)
        script.write("delay = function() return 10 end\n")
        script.close()
        for what in ("/caps.xml", "/wps?service=WPS&request=GetCapabilities"):
            w = subprocess.Popen(["wrk", "-t", "2", "-c", "8", "-d", "60s", "-s", script.name,
                                  a.url(what)], stdout=subprocess.PIPE, text=True)
            for _ in range(5):
                time.sleep(11)
                a.ctl("graceful")
            out = w.communicate()[0]
            errors = re.search(r"Socket errors: (.*)", out)
            n = re.search(r"(\d+) requests in", out).group(1)
            print(f"{what}: {n} requests, 5 graceful "
                  f"restarts, socket errors: {errors.group(1) if errors else 'none'}")
            sys.stdout.flush()
    finally:
        a.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--restart-every", type=float, default=60)
    ap.add_argument("--control", action="store_true",
                    help="socket errors across graceful restarts: static file vs mod_wps")
    ap.add_argument("--module", default=BUILT)
    ap.add_argument("--slots", type=int, default=-1, help="parallelprocesses (-1: unlimited)")
    ap.add_argument("--store", choices=["file", "pg"], default="file")
    args = ap.parse_args()
    if args.control:
        return control(os.path.abspath(args.module))
    pg = None
    if args.store == "pg":
        from jobstore import Cluster
        pg = Cluster()
    try:
        soak(args, pg)
    finally:
        if pg:
            pg.stop()


def soak(args, pg):
    total = args.minutes * 60
    lines = f"allowedhosts = 127.0.0.1\nmaxprocesses = 1000000\nparallelprocesses = {args.slots}"
    if pg:
        lines += f"\njobstore = {pg.conn}"
    a = Apache(os.path.abspath(args.module), server_lines=lines)
    ref_port = free_port()
    data = os.path.join(ROOT, "tests", "data")
    ref = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                            "--directory", data, str(ref_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False, dir=a.dir)
        body.write(FEATURE_COUNT_REF.format(href=f"http://127.0.0.1:{ref_port}/polygons.gml"))
        body.close()
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, dir=a.dir)
        script.write(lua(body.name))
        script.close()
        time.sleep(0.5)
        load = open("/proc/loadavg").read().split()[:3]
        print(f"mod_wps soak: {args.minutes:g} min of mixed load (wrk 8 connections, 10 ms pause), "
              f"graceful restart every {args.restart_every:g} s, {os.cpu_count()} cores, load "
              f"average {' '.join(load)} at the start")
        wrk = subprocess.Popen(["wrk", "-t", "2", "-c", "8", "-d", f"{int(total)}s", "--timeout",
                                "30s", "--latency", "-s", script.name, a.url("/")],
                               stdout=subprocess.PIPE, text=True)
        samples = []   # (t, generation, parent rss, parent fds, [(pid, rss, fds)])
        generation = 0
        births = {}
        t0 = time.time()
        next_restart = t0 + args.restart_every
        next_sample = t0 + 10
        graceful_times = []
        while wrk.poll() is None:
            now = time.time()
            if now >= next_sample:
                pid = a.pid()
                kids = []
                for c in a.children():
                    st = proc_status(c)
                    births.setdefault(c, generation)
                    if st:
                        kids.append((c, st.get("VmRSS", 0), fds(c), births[c]))
                ps = proc_status(pid)
                samples.append((now - t0, generation, ps.get("VmRSS", 0), fds(pid), kids))
                print(f"  {now - t0:5.0f} s  gen {generation:2}  parent {ps.get('VmRSS', 0):>7} kB "
                      f"{fds(pid):>3} fds  children: "
                      + ", ".join(f"{k[0]}(g{k[3]}) {k[1]} kB {k[2]} fds" for k in kids))
                sys.stdout.flush()
                next_sample += 10
            if now >= next_restart and now < t0 + total - 5:
                a.ctl("graceful")
                graceful_times.append(now - t0)
                generation += 1
                next_restart += args.restart_every
            time.sleep(0.2)
        out = wrk.stdout.read()
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
        # the asynchronous jobs: all finished and succeeded
        index = os.path.join(a.dir, "work", "index")
        states = {"accepted": "a", "running": "r", "succeeded": "s", "failed": "f"}
        deadline = time.time() + 120
        while time.time() < deadline:
            st = {}
            if pg:
                for state, n in pg.query("SELECT state, count(*) FROM wps_jobs GROUP BY state"):
                    st[states.get(state, state)] = int(n)
            for root, _, names in os.walk(index):
                for n in names:
                    parts = n.split(".")
                    if len(parts) == 4:
                        st[parts[1]] = st.get(parts[1], 0) + 1
            if st.get("a", 0) + st.get("r", 0) == 0:
                break
            time.sleep(1)
        if pg:
            # an idle PostgreSQL backend reports its statistics up to 10 s late: the load's
            # last commits would count as the idle server's
            time.sleep(11)
            c0, t1 = pg.commits(), time.time()
            time.sleep(5)
            rate = (pg.commits() - c0) / (time.time() - t1)
            waiting = pg.query("SELECT count(*) FROM wps_waiting")[0][0]
            print(f"database after the load: {rate:.0f} commits/s, {waiting} rows in wps_waiting")
        print(f"requests: {reqs}, non-2xx: {non2xx.group(1) if non2xx else 0}, socket errors: "
              f"{errors.group(1) if errors else 'none'}, p99 {p99:.1f} ms; graceful restarts at "
              + ", ".join(f"{g:.0f}" for g in graceful_times) + " s")
        print(f"async jobs in the store: {st.get('s', 0)} succeeded, {st.get('f', 0)} failed, "
              f"{st.get('a', 0) + st.get('r', 0)} not finished")
        # warm-up: the first minute and the first graceful restart
        warm = [s for s in samples if s[0] >= args.restart_every + 10]
        if warm:
            p0, p1 = warm[0], warm[-1]
            print(f"parent after warm-up: RSS {p0[2]} -> {p1[2]} kB "
                  f"({(p1[2] - p0[2]) / p0[2] * 100:+.1f} %), fds {p0[3]} -> {p1[3]}")
            last_of_gen = {}
            for s in warm:
                kids = [k for k in s[4] if k[3] == s[1]]
                if kids:
                    last_of_gen[s[1]] = (sum(k[1] for k in kids) / len(kids),
                                         sorted(k[2] for k in kids))
            gens = sorted(last_of_gen)
            if len(gens) >= 2:
                g0, g1 = last_of_gen[gens[0]], last_of_gen[gens[-1]]
                print(f"children (mean RSS at the end of a generation): gen {gens[0]} {g0[0]:.0f} kB, "
                      f"gen {gens[-1]} {g1[0]:.0f} kB ({(g1[0] - g0[0]) / g0[0] * 100:+.1f} %); "
                      f"fds per child {g0[1]} -> {g1[1]}")
                print("  per generation: " + ", ".join(
                    f"g{g} {last_of_gen[g][0]:.0f} kB {last_of_gen[g][1]} fds" for g in gens))
        log = open(os.path.join(a.dir, "error.log")).read()
        bad = [line for line in log.splitlines() if re.search(r":(error|crit|alert|emerg)\]", line)]
        print(f"error log: {len(bad)} error lines" + ("".join("\n  " + b for b in bad[:10])))
    finally:
        ref.terminate()
        ref.wait()
        a.stop()


if __name__ == "__main__":
    main()
