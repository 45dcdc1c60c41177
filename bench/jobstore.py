#!/usr/bin/env python3
"""mod_wps job store benchmark: the file store next to the PostgreSQL store. For each, one real
Apache (event MPM) on loopback with the release module; jobs are never run
(`parallelprocesses = 0`), so what is measured is the store: asynchronous submissions per
second (`ab`, 16 at a time; each one is durable before it is answered) and reads of a job's
status document per second (`wrk`, 8 connections; rendered from the job's record).

The PostgreSQL store uses a throwaway cluster (Debian's `postgresql`, as `.ci/deps`
installs it) in a temp dir on a free loopback port, removed afterwards; as root, initdb and
pg_ctl run as the `postgres` user. A benchmark, not a test: it asserts nothing.

`--slots N` measures the stores with N `parallelprocesses` slots instead (2: PyWPS's default),
where synchronous requests wait in line for a slot: for each store, the database's commits
per second and the CPU of Apache and PostgreSQL while the server idles (3 s after start, over
5 s), then synchronous Execute requests by `wrk` (say_hello at 8 connections, feature_count
on the base64 railroads.gml at 8 and 32): requests per second, p50 and p99.

usage: bench/jobstore.py [--jobs N] [--seconds N] [--slots N] [--module PATH]
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import BUILT, MODULES, build_if_ours, free_port, write, wrk  # noqa: E402


def as_postgres(args):
    return (["runuser", "-u", "postgres", "--"] + args) if os.geteuid() == 0 else args


class Cluster:
    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise SystemExit("PostgreSQL is not installed (Debian package postgresql)")
        self.bin = os.path.dirname(bins[-1])
        self.dir = tempfile.mkdtemp(prefix="mod_wps-bench-pg-")
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        subprocess.run(as_postgres([os.path.join(self.bin, "initdb"), "-D", data, "-U", "postgres",
                                    "--auth=trust", "--no-sync"]), check=True, capture_output=True)
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        subprocess.run(as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", data, "-o", opts, "-l",
                                    os.path.join(self.dir, "log"), "-w", "start"]),
                       check=True, capture_output=True)
        self.conn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def query(self, sql):
        """The rows of a query on the cluster's database, as lists of strings."""
        out = subprocess.run(as_postgres([os.path.join(self.bin, "psql"), "-h", "127.0.0.1",
                                          "-p", str(self.port), "-U", "postgres", "-At", "-F",
                                          " ", "-c", sql]),
                             capture_output=True, text=True, check=True).stdout
        return [line.split() for line in out.splitlines() if line]

    def commits(self):
        """Transactions committed in the cluster so far."""
        return int(self.query("SELECT sum(xact_commit) FROM pg_stat_database")[0][0])

    def pids(self):
        """The server's processes: the postmaster and its children."""
        main = int(open(os.path.join(self.dir, "data", "postmaster.pid")).readline())
        out = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout
        return [main] + [int(p) for p in out.split()]

    def stop(self):
        subprocess.run(as_postgres([os.path.join(self.bin, "pg_ctl"), "-D",
                                    os.path.join(self.dir, "data"), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Apache:
    def __init__(self, module, server_lines):
        self.dir = tempfile.mkdtemp(prefix="mod_wps-bench-store-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        write(os.path.join(self.dir, "wps.cfg"), f"""[server]
workdir = {self.dir}/work
parallelprocesses = 0
maxprocesses = 1000000
{server_lines}
[processes]
builtin = all
""")
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        write(os.path.join(self.dir, "httpd.conf"), f"""ServerRoot {self.dir}
ServerName localhost
Listen 127.0.0.1:{self.port}
PidFile {self.dir}/httpd.pid
ErrorLog {self.dir}/error.log
LogLevel warn
Mutex file:{self.dir} default
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
StartServers 2
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule wps_module {module}
{user}DocumentRoot {self.dir}
WPSScriptAlias /wps {self.dir}/wps.cfg
""")
        subprocess.run(["apache2", "-f", os.path.join(self.dir, "httpd.conf"), "-k", "start"], check=True)
        self.wait()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url("/wps?service=WPS&request=GetCapabilities"), timeout=2).read()
                return
            except Exception:
                time.sleep(0.1)
        raise SystemExit("apache did not start:\n" + open(os.path.join(self.dir, "error.log")).read())

    def stop(self):
        pid = int(open(os.path.join(self.dir, "httpd.pid")).read())
        subprocess.run(["apache2", "-f", os.path.join(self.dir, "httpd.conf"), "-k", "stop"])
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)


SUBMIT = ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep"
          "&DataInputs=delay=0&storeExecuteResponse=true&status=true")


def measure(name, a, jobs, secs):
    # the first submission (and, for PostgreSQL, the schema) before the clock starts
    doc = urllib.request.urlopen(a.url(SUBMIT)).read().decode()
    status = re.search(r'statusLocation="http://[^/]+([^"]+)"', doc).group(1)
    out = subprocess.run(["ab", "-q", "-n", str(jobs), "-c", "16", a.url(SUBMIT)],
                         capture_output=True, text=True, check=True).stdout
    taken = float(re.search(r"Time taken for tests:\s+([\d.]+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    bad = failed + (int(non2xx.group(1)) if non2xx else 0)
    rps, p50, p99, bad_reads, _ = wrk(a.url(status), 8, secs)
    print(f"{name:12} {jobs / taken:>14.0f} {bad:>8} {rps:>14.0f} {p50:>8.2f} {p99:>8.2f} {bad_reads:>8}")
    sys.stdout.flush()


def cpu_ticks(pids):
    """CPU clock ticks (user + system) of these processes (the ones gone count nothing)."""
    ticks = 0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            ticks += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def slots(module, n, secs):
    """Synchronous requests with `n` slots, on each store (see the module documentation)."""
    hello = bench.HELLO_XML
    fc = bench.workload_xml("feature_count", "layer", "", "count", "base64")
    cases = [("say_hello", hello, 8), ("feature_count", fc, 8), ("feature_count", fc, 32)]
    print(f"mod_wps synchronous requests with parallelprocesses = {n}, {secs} s per case, "
          f"{os.cpu_count()} cores")
    print(f"{'store':12} {'idle: commits/s':>16} {'Apache CPU':>11} {'PG CPU':>8}")
    rows = []
    for store in ("file", "postgresql"):
        pg = Cluster() if store == "postgresql" else None
        try:
            lines = f"parallelprocesses = {n}" + (f"\njobstore = {pg.conn}" if pg else "")
            a = bench.Apache(module, threads=4, server_lines=lines)
            try:
                time.sleep(3)
                hz = os.sysconf("SC_CLK_TCK")
                apache = [a.pid()] + a.children()
                postgres = pg.pids() if pg else []
                c0, a0, p0 = pg.commits() if pg else 0, cpu_ticks(apache), cpu_ticks(postgres)
                time.sleep(5)
                c1, a1, p1 = pg.commits() if pg else 0, cpu_ticks(apache), cpu_ticks(postgres)
                idle = f"{(c1 - c0) / 5:.0f}" if pg else "-"
                print(f"{store:12} {idle:>16} {(a1 - a0) / hz / 5 * 100:>10.1f}% "
                      f"{(p1 - p0) / hz / 5 * 100:>7.1f}%")
                for process, body, conns in cases:
                    wrk(a.url("/wps"), conns, 2, body=body)
                    rows.append((store, process, conns) + wrk(a.url("/wps"), conns, secs, body=body)[:4])
            finally:
                a.stop()
        finally:
            if pg:
                pg.stop()
    print(f"\n{'store':12} {'process':14} {'conns':>5} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'non-2xx':>8}")
    for store, process, conns, rps, p50, p99, bad in rows:
        print(f"{store:12} {process:14} {conns:>5} {rps:>9.1f} {p50:>9.2f} {p99:>9.2f} {bad:>8}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--slots", type=int, help="synchronous requests with this many slots")
    ap.add_argument("--module", default=BUILT)
    args = ap.parse_args()
    module = os.path.abspath(args.module)
    build_if_ours(module)
    if args.slots is not None:
        return slots(module, args.slots, args.seconds)
    print(f"mod_wps job stores: {args.jobs} async submissions (ab -c 16), status reads for "
          f"{args.seconds} s (wrk, 8 connections), {os.cpu_count()} cores")
    print(f"{'store':12} {'submissions/s':>14} {'refused':>8} {'status reads/s':>14} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    a = Apache(module, "")
    try:
        measure("file", a, args.jobs, args.seconds)
    finally:
        a.stop()
    pg = Cluster()
    try:
        a = Apache(module, f"jobstore = {pg.conn}")
        try:
            measure("postgresql", a, args.jobs, args.seconds)
        finally:
            a.stop()
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
