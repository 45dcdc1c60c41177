#!/usr/bin/env python3
"""mod_wps benchmark: one real Apache (event MPM) on loopback serving the demo service and, in
the same server, a static copy of the exact GetCapabilities bytes. wrk runs against each case
in turn; the table gives requests/s, p50/p99 latency, non-2xx responses and the ratio to the
static file measured in the same run. Then 1,000 asynchronous sleep jobs (delay 0), and the
Apache children's RSS before and after the sustained load.

usage: bench/bench.py [--seconds N] [--smoke] [--module PATH]
Loads are bounded in time and target 127.0.0.1 only.
"""
import argparse
import json
import concurrent.futures
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = "/usr/lib/apache2/modules"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Apache:
    def __init__(self, module):
        self.dir = tempfile.mkdtemp(prefix="mod_wps-bench-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        work = os.path.join(self.dir, "work")
        write(os.path.join(self.dir, "wps.cfg"), f"""[metadata:main]
identification_title = mod_wps benchmark
[server]
workdir = {work}
parallelprocesses = -1
maxprocesses = 5000
[processes]
builtin = all
""")
        os.makedirs(os.path.join(self.dir, "htdocs"))
        os.chmod(os.path.join(self.dir, "htdocs"), 0o755)
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
ThreadsPerChild 64
MaxRequestWorkers 128
MinSpareThreads 64
MaxSpareThreads 128
MaxRequestsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule mime_module {MODULES}/mod_mime.so
TypesConfig /etc/mime.types
LoadModule wps_module {module}
{user}DocumentRoot {self.dir}/htdocs
WPSDaemonProcess bench threads=4 queue=1000
WPSScriptAlias /wps {self.dir}/wps.cfg process-group=bench
""")
        self.ctl("start")
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url("/wps?service=WPS&request=GetCapabilities"), timeout=2).read()
                return
            except Exception:
                time.sleep(0.1)
        raise SystemExit("apache did not start:\n" + open(os.path.join(self.dir, "error.log")).read())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ctl(self, what):
        subprocess.run(["apache2", "-f", os.path.join(self.dir, "httpd.conf"), "-k", what], check=True)

    def children(self):
        pid = int(open(os.path.join(self.dir, "httpd.pid")).read())
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def rss_kb(self):
        total = 0
        for p in self.children():
            try:
                for line in open(f"/proc/{p}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total

    def stop(self):
        try:
            pid = int(open(os.path.join(self.dir, "httpd.pid")).read())
        except FileNotFoundError:
            pid = None
        self.ctl("stop")
        while pid:
            try:
                os.kill(pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        shutil.rmtree(self.dir, ignore_errors=True)


def to_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def wrk(url, conns, seconds, body=None):
    args = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "--latency", url]
    script = None
    if body is not None:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        escaped = body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        script.write(f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
                     'wrk.headers["Content-Type"] = "text/xml"\n')
        script.close()
        args[1:1] = ["-s", script.name]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, p50, p99, int(non2xx.group(1)) if non2xx else 0, errors.group(1) if errors else ""


HELLO_XML = """<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
<ows:Identifier>say_hello</ows:Identifier>
<wps:DataInputs><wps:Input><ows:Identifier>name</ows:Identifier><wps:Data><wps:LiteralData>bench</wps:LiteralData></wps:Data></wps:Input></wps:DataInputs>
</wps:Execute>"""


def namespace_flood():
    """62 nested elements with 250 namespace declarations each, then 1100 elements with 250
    prefixed attributes each: 2.8 MB, under the default maxrequestsize (3mb). Refused with a
    400 (too many namespace declarations in scope); what is measured is how cheaply. The same
    document as namespace_flood() in src/front/wps1/xml_request.rs."""
    ns = ('xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" '
          'xmlns:xlink="http://www.w3.org/1999/xlink"')
    decls = "".join(f' xmlns:p{i}="u:{i}"' for i in range(250))
    attrs = "".join(f' p{i}:a=""' for i in range(250))
    return (f'<wps:Execute service="WPS" version="1.0.0" {ns}>'
            + "".join(f"<n{d}{decls}>" for d in range(62))
            + f"<e{attrs}/>" * 1100
            + "".join(f"</n{d}>" for d in reversed(range(62)))
            + "</wps:Execute>")


def async_jobs(a, n):
    """Submits n async sleep jobs (delay 0) with ab (16 at a time) as fast as the server takes
    them, then waits until the job store records n more finished jobs, and checks their state
    (and, through the server, the status document of one of them)."""
    path = ("/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep"
            "&DataInputs=delay=0&storeExecuteResponse=true&status=true")
    records = os.path.join(a.dir, "work", "records")

    def states():
        out = {}
        for name in os.listdir(records):
            if name.endswith(".json") and not name.startswith("."):
                try:
                    with open(os.path.join(records, name)) as f:
                        out[name[:-5]] = json.load(f)["state"]
                except (OSError, ValueError):
                    pass
        return out

    before = set(states())
    t0 = time.time()
    out = subprocess.run(["ab", "-q", "-n", str(n), "-c", "16", a.url(path)],
                         capture_output=True, text=True, check=True).stdout
    accepted = float(re.search(r"Time taken for tests:\s+([\d.]+)", out).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    refused = failed + (int(non2xx.group(1)) if non2xx else 0)
    deadline = time.time() + 300
    while time.time() < deadline:
        new = {k: v for k, v in states().items() if k not in before}
        if sum(v in ("succeeded", "failed") for v in new.values()) >= n - refused:
            break
        time.sleep(0.1)
    done = time.time() - t0
    ok = sum(v == "succeeded" for v in new.values())
    if new:
        job = next(iter(new))
        doc = urllib.request.urlopen(a.url(f"/wps/outputs/{job}.xml")).read().decode()
        assert "ProcessSucceeded" in doc, doc
    return n, refused, accepted, done, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="a few seconds in all")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--module", default=os.path.join(ROOT, "target/release/libmod_wps.so"))
    args = ap.parse_args()
    secs = 1 if args.smoke else args.seconds
    jobs = 50 if args.smoke else args.jobs
    a = Apache(os.path.abspath(args.module))
    try:
        caps = urllib.request.urlopen(a.url("/wps?service=WPS&request=GetCapabilities")).read()
        with open(os.path.join(a.dir, "htdocs", "caps.xml"), "wb") as f:
            f.write(caps)
        os.chmod(os.path.join(a.dir, "htdocs", "caps.xml"), 0o644)
        q = "/wps?service=WPS&version=1.0.0&request="
        cases = [
            ("static file (GetCapabilities bytes)", a.url("/caps.xml"), None),
            ("GetCapabilities", a.url("/wps?service=WPS&request=GetCapabilities"), None),
            ("DescribeProcess all", a.url(q + "DescribeProcess&identifier=all"), None),
            ("Execute say_hello KVP", a.url(q + "Execute&identifier=say_hello&DataInputs=name=bench"), None),
            ("Execute say_hello XML POST", a.url("/wps"), HELLO_XML),
            ("Execute ultimate_question raw", a.url(q + "Execute&identifier=ultimate_question&RawDataOutput=answer"), None),
            # hostile: answered 400, so its non-2xx column is its whole count
            ("XML namespace flood 2.8 MB (400)", a.url("/wps"), namespace_flood()),
        ]
        # warm-up at both concurrencies (threads, allocator arenas, caches), then RSS baseline
        for conns in (8, 64):
            for _, url, body in cases:
                wrk(url, conns, 1, body)
        rss_before = a.rss_kb()
        print(f"mod_wps benchmark: {secs} s per case, wrk -t2, {len(caps)} byte GetCapabilities, "
              f"{os.cpu_count()} cores")
        print(f"{'case':38} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs static':>9}")
        static = {}
        for conns in (8, 64):
            for name, url, body in cases:
                rps, p50, p99, bad, errs = wrk(url, conns, secs, body)
                if name.startswith("static"):
                    static[conns] = rps
                ratio = rps / static[conns] * 100
                extra = f"  socket errors: {errs}" if errs else ""
                print(f"{name:38} {conns:>5} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {bad:>8} {ratio:>8.0f}%{extra}")
                sys.stdout.flush()
        # leak check: the same load again, sustained; RSS must stay flat
        rss_mid = a.rss_kb()
        for _ in range(2):
            for _, url, body in cases[1:]:
                wrk(url, 64, secs, body)
        rss_after = a.rss_kb()
        submitted, refused, accepted, done, ok = async_jobs(a, jobs)
        print(f"async: {submitted} sleep jobs (delay 0) submitted ({refused} refused), accepted in "
              f"{accepted:.2f} s, {ok} succeeded after {done:.2f} s")
        growth = (rss_after - rss_mid) / rss_mid * 100 if rss_mid else 0
        print(f"RSS of the Apache children: {rss_before} kB after warm-up, {rss_mid} kB after the "
              f"table, {rss_after} kB after {2 * (len(cases) - 1) * secs} s more at 64 connections "
              f"({growth:+.1f} %)")
    finally:
        a.stop()


if __name__ == "__main__":
    main()
