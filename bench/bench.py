#!/usr/bin/env python3
"""mod_wps benchmark: one real Apache (event MPM) on loopback serving the demo service and, in
the same server, a static copy of the exact GetCapabilities bytes. wrk runs against each case
in turn; the table gives requests/s, p50/p99 latency, non-2xx responses and the ratio to the
static file measured in the same run. Then 1,000 asynchronous sleep jobs (delay 0), and the
Apache children's RSS before and after the sustained load.

With --pywps, PyWPS 4.8 under mod_wsgi (bench/pywps/setup.sh installs it; an Apache of its own
with the same MPM settings) answers the same requests in the same run, and every row also
gives its rate and mod_wps/PyWPS. With
--workloads, the GDAL processes on railroads.gml (inline and base64, 1/4/16 connections) next
to the same work without a server (bench/gdal_alone.rs). The module and the example are built
first (`cargo build --release`, `--examples`) unless --module names another module.

usage: bench/bench.py [--seconds N] [--smoke] [--pywps] [--workloads] [--module PATH]
Loads are bounded in time and target 127.0.0.1 only.
"""
import argparse
import base64
import glob
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = "/usr/lib/apache2/modules"


BUILT = os.path.join(ROOT, "target", "release", "libmod_wps.so")
_built = False


def build_if_ours(module):
    """The module this checkout builds is built first (`cargo build --release` and the
    examples; a no-op when nothing changed): `cargo build --release --examples` alone does not
    refresh target/release/libmod_wps.so, and an old module measured by mistake looks like a
    result. A module given with --module (e.g. an older commit's) is measured as it is."""
    global _built
    if _built or os.path.realpath(module) != os.path.realpath(BUILT):
        return
    for extra in ([], ["--examples"]):
        subprocess.run(["cargo", "build", "--release", "--quiet"] + extra, cwd=ROOT, check=True)
    _built = True


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
    """One Apache (event MPM) with mod_wps at /wps and the static document root; with `pywps`
    (the venv bench/pywps/setup.sh made) and no `module`, PyWPS 4.8 under mod_wsgi at /pywps
    instead, deployed as PyWPS is (`WSGIDaemonProcess pywps processes=2 threads=5`) with the
    same config values, in an Apache of its own (a request still waiting for PyWPS holds an
    Apache thread, which would otherwise be missing for the next mod_wps case).
    `server_lines` are added to mod_wps's [server] section."""

    def __init__(self, module, pywps=None, server_lines="", threads=4, queue=1000):
        if module:
            build_if_ours(module)
        self.dir = tempfile.mkdtemp(prefix="mod_wps-bench-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "httpd.conf")
        work = os.path.join(self.dir, "work")
        own = {line.split("=")[0].strip() for line in server_lines.splitlines() if "=" in line}
        values = "\n".join(line for line in SERVER_VALUES.splitlines()
                           if line.split("=")[0].strip() not in own)
        write(os.path.join(self.dir, "wps.cfg"), f"""[metadata:main]
identification_title = mod_wps benchmark
[server]
workdir = {work}
{values}
{server_lines}
[processes]
builtin = all
""")
        os.makedirs(os.path.join(self.dir, "htdocs"))
        os.chmod(os.path.join(self.dir, "htdocs"), 0o755)
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        wsgi = self.pywps_conf(pywps) if pywps else ""
        wps = f"""LoadModule wps_module {module}
WPSDaemonProcess bench threads={threads} queue={queue}
WPSScriptAlias /wps {self.dir}/wps.cfg process-group=bench
""" if module else ""
        write(self.conf, f"""ServerRoot {self.dir}
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
{user}DocumentRoot {self.dir}/htdocs
{wps}{wsgi}""")
        self.ctl("start")
        if module:
            self.wait("/wps?service=WPS&request=GetCapabilities")
        if pywps:
            self.wait("/pywps?service=WPS&request=GetCapabilities", 60)

    def pywps_conf(self, venv):
        """pywps.cfg, the .wsgi file and the mod_wsgi directives."""
        for d in ("pywps-work", "pywps-outputs", "pywps-log"):
            os.makedirs(os.path.join(self.dir, d))
            if os.geteuid() == 0:
                shutil.chown(os.path.join(self.dir, d), "www-data", "www-data")
        write(os.path.join(self.dir, "pywps.cfg"), f"""[metadata:main]
identification_title = PyWPS benchmark
[server]
url = http://127.0.0.1:{self.port}/pywps
outputurl = http://127.0.0.1:{self.port}/pywps-outputs/
outputpath = {self.dir}/pywps-outputs
workdir = {self.dir}/pywps-work
{SERVER_VALUES}
[logging]
level = ERROR
file = {self.dir}/pywps-log/pywps.log
database = sqlite:///{self.dir}/pywps-log/pywps-logs.sqlite3
""")
        write(os.path.join(self.dir, "pywps.wsgi"), f"""import sys
sys.path.insert(0, {os.path.join(ROOT, 'bench', 'pywps')!r})
from pywps.app.Service import Service
from processes import PROCESSES
application = Service(PROCESSES, [{os.path.join(self.dir, 'pywps.cfg')!r}])
""")
        return f"""LoadModule wsgi_module {MODULES}/mod_wsgi.so
WSGISocketPrefix {self.dir}/wsgi
WSGIRestrictEmbedded On
WSGIDaemonProcess pywps processes=2 threads=5 python-home={venv} display-name=pywps
WSGIScriptAlias /pywps {self.dir}/pywps.wsgi process-group=pywps application-group=%{{GLOBAL}}
"""

    def wait(self, path, secs=20):
        deadline = time.time() + secs
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url(path), timeout=5).read()
                return
            except Exception:
                time.sleep(0.2)
        raise SystemExit(f"apache did not answer {path}:\n" + open(os.path.join(self.dir, "error.log")).read())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ctl(self, what):
        subprocess.run(["apache2", "-f", self.conf, "-k", what], check=True)

    def pid(self):
        return int(open(os.path.join(self.dir, "httpd.pid")).read())

    def children(self):
        out = subprocess.run(["pgrep", "-P", str(self.pid())], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def rss_kb(self):
        return sum(proc_status(p).get("VmRSS", 0) for p in self.children())

    def stop(self):
        try:
            pid = self.pid()
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


# the [server] values both services get
SERVER_VALUES = """maxsingleinputsize = 1mb
maxrequestsize = 3mb
parallelprocesses = -1
maxprocesses = 5000"""


def proc_status(pid):
    """VmRSS etc. of a process, in kB ({} when it is gone)."""
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def to_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def wrk(url, conns, seconds, body=None, paths=None, threads=2):
    """wrk against `url` (a POST of `body` when given; GETs of random lines of the file
    `paths`, relative to `url`, when given): (requests/s, p50 ms, p99 ms, non-2xx, socket
    errors)."""
    threads = max(1, min(threads, conns))
    args = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "30s",
            "--latency", url]
    script = None
    if body is not None or paths is not None:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            with tempfile.NamedTemporaryFile("wb", suffix=".body", delete=False) as f:
                f.write(body)
            script.write(f'local f = io.open("{f.name}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
                         'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/xml"\n')
        else:
            script.write(f'local paths = {{}}\nfor l in io.lines("{paths}") do paths[#paths + 1] = l end\n'
                         'request = function() return wrk.format("GET", paths[math.random(#paths)]) end\n')
        script.close()
        args[1:1] = ["-s", script.name]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if script:
        os.unlink(script.name)
        if body is not None:
            os.unlink(f.name)
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


RAILROADS = os.path.join(ROOT, "..", "shared", "data", "railroads.gml")
# each real workload: its layer input, other inputs, the output asked for raw, and a check
WORKLOADS = [
    ("feature_count", "layer", "", "count", lambda b: b.strip() == b"832"),
    ("centroids", "layer", "", "out", lambda b: b.count(b'"Point"') == 832),
    ("buffer", "poly_in", "buffer=10", "buff_out", lambda b: b.count(b"<gml:Polygon") == 832),
    ("area", "layer", "", "area", lambda b: len(json.loads(b)) == 832),
]


def railroads():
    """The PyWPS demo's railroads.gml as it is embedded in a request (no XML declaration)."""
    text = open(RAILROADS).read()
    return text[text.index("<ogr:FeatureCollection"):]


def workload_xml(process, layer, literal, output, encoding):
    gml = railroads()
    if encoding == "base64":
        data = f'<wps:ComplexData mimeType="application/gml+xml" encoding="base64">' \
               f'{base64.b64encode(gml.encode()).decode()}</wps:ComplexData>'
    else:
        data = f'<wps:ComplexData mimeType="application/gml+xml">\n{gml}\n</wps:ComplexData>'
    inputs = f"<wps:Input><ows:Identifier>{layer}</ows:Identifier><wps:Data>{data}</wps:Data></wps:Input>"
    if literal:
        k, v = literal.split("=")
        inputs += (f"<wps:Input><ows:Identifier>{k}</ows:Identifier><wps:Data><wps:LiteralData>"
                   f"{v}</wps:LiteralData></wps:Data></wps:Input>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<wps:Execute service="WPS" version="1.0.0" '
            f'xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">'
            f"<ows:Identifier>{process}</ows:Identifier><wps:DataInputs>{inputs}</wps:DataInputs>"
            f"<wps:ResponseForm><wps:RawDataOutput><ows:Identifier>{output}</ows:Identifier>"
            f"</wps:RawDataOutput></wps:ResponseForm></wps:Execute>")


def post(url, body):
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def children_cpu():
    """CPU seconds of this script's finished child processes (wrk, gdal_alone)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def machine_busy():
    """CPU seconds the whole machine has been busy (all cores, kernel included)."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def thread_cpu(apache):
    """CPU seconds of the Apache children's threads: (the WPS pools' threads, the others:
    Apache's own, which read and answer the requests)."""
    pool = other = 0
    for child in apache.children():
        for task in glob.glob(f"/proc/{child}/task/*"):
            try:
                comm = open(f"{task}/comm").read().strip()
                ns = int(open(f"{task}/schedstat").read().split()[0])
            except (OSError, ValueError):
                continue
            if comm.startswith("wps-"):
                pool += ns / 1e9
            else:
                other += ns / 1e9
    return pool, other


def gdal_alone(process, encoding, threads, seconds):
    """(executions per second, CPU ms per execution) of the process without a server."""
    exe = os.path.join(ROOT, "target", "release", "examples", "gdal_alone")
    cpu = children_cpu()
    out = json.loads(subprocess.run([exe, process, encoding, str(threads), str(seconds), RAILROADS],
                                    capture_output=True, text=True, check=True).stdout)
    return out["per_second"], (children_cpu() - cpu) * 1e3 / max(out["runs"], 1)


def workloads(a, secs, pywps, conns_list=(1, 4, 16)):
    """The GDAL processes on railroads.gml (832 features), inline and base64, next to the same
    work without a server (bench/gdal_alone.rs on as many threads as connections)."""
    print(f"\nreal workloads: railroads.gml ({os.path.getsize(RAILROADS)} bytes, 832 features), "
          f"XML POST with RawDataOutput, {secs} s per case; GDAL alone = the same process on the "
          "same input value without a server, on as many threads as connections (mean of a run "
          "just before and one just after the server's). CPU ms per request (execution): "
          "alone = GDAL alone's; all = the whole machine's while the server ran, of it pool = "
          "the WPS pool's threads, httpd = Apache's request threads, wrk = the client")
    head = (f"{'process':14} {'input':7} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'non-2xx':>7} {'GDAL/s':>8} {'vs GDAL':>7} {'alone':>6} {'all':>6} {'pool':>6} "
            f"{'httpd':>6} {'wrk':>5}")
    if pywps:
        head += f" {'PyWPS/s':>8} {'p99 ms':>8} {'non-2xx':>7} {'vs PyWPS':>8}"
    print(head)
    for process, layer, literal, output, ok in WORKLOADS:
        for encoding in ("inline", "base64"):
            body = workload_xml(process, layer, literal, output, encoding)
            targets = [(a.url("/wps"), "mod_wps")] + ([(pywps.url("/pywps"), "PyWPS")] if pywps else [])
            for url, who in targets:
                status, resp = post(url, body)
                if status != 200 or not ok(resp):
                    raise SystemExit(f"{who} {process} {encoding}: {status} {resp[:300]!r}")
            for conns in conns_list:
                # GDAL alone just before and just after the server: their mean, so that the
                # machine's drift between the runs (a few per cent here) does not count
                before, before_ms = gdal_alone(process, encoding, conns, secs)
                pool0, httpd0 = thread_cpu(a)
                wrk0, busy0 = children_cpu(), machine_busy()
                rps, p50, p99, bad, errs = wrk(a.url("/wps"), conns, secs, body)
                wrk1, busy1 = children_cpu(), machine_busy()
                pool1, httpd1 = thread_cpu(a)
                after, after_ms = gdal_alone(process, encoding, conns, secs)
                alone, alone_ms = (before + after) / 2, (before_ms + after_ms) / 2
                ms = 1e3 / max(rps * secs, 1)
                line = (f"{process:14} {encoding:7} {conns:>5} {rps:>8.1f} {p50:>8.1f} {p99:>8.1f} "
                        f"{bad:>7} {alone:>8.1f} {rps / alone * 100 if alone else 0:>6.0f}% "
                        f"{alone_ms:>6.2f} {(busy1 - busy0) * ms:>6.2f} {(pool1 - pool0) * ms:>6.2f} "
                        f"{(httpd1 - httpd0) * ms:>6.2f} {(wrk1 - wrk0) * ms:>5.2f}")
                if pywps:
                    prps, _, pp99, pbad, perrs = wrk(pywps.url("/pywps"), conns, secs, body)
                    ratio = f"{rps / prps:>7.1f}x" if prps else "      -"
                    line += f" {prps:>8.1f} {pp99:>8.1f} {pbad:>7} {ratio}"
                    errs = socket_errors(errs, perrs)
                else:
                    errs = socket_errors(errs, "")
                print(line + errs)
                sys.stdout.flush()


def socket_errors(ours, pywps):
    """The socket errors wrk saw, by server (empty when none)."""
    parts = ([f"mod_wps {ours}"] if ours else []) + ([f"PyWPS {pywps}"] if pywps else [])
    return ("  socket errors: " + "; ".join(parts)) if parts else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="a few seconds in all")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--pywps", action="store_true",
                    help="PyWPS 4.8 under mod_wsgi side by side (installed by bench/pywps/setup.sh)")
    ap.add_argument("--workloads", action="store_true",
                    help="the GDAL processes on railroads.gml next to GDAL alone")
    ap.add_argument("--only-workloads", action="store_true", help="skip the request table")
    ap.add_argument("--module", default=BUILT)
    args = ap.parse_args()
    secs = 1 if args.smoke else args.seconds
    jobs = 50 if args.smoke else args.jobs
    venv = None
    if args.pywps:
        venv = subprocess.run(["bash", os.path.join(ROOT, "bench", "pywps", "setup.sh")],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    a = Apache(os.path.abspath(args.module))
    py = Apache(None, pywps=venv) if venv else None
    try:
        load = open("/proc/loadavg").read().split()[:3]
        print(f"mod_wps benchmark: {secs} s per case, wrk, {os.cpu_count()} cores, load average "
              f"{' '.join(load)} at the start")
        if not args.only_workloads:
            table(a, secs, jobs, py)
        if args.workloads or args.only_workloads:
            workloads(a, secs, py)
    finally:
        a.stop()
        if py:
            py.stop()


def table(a, secs, jobs, pywps):
    caps = urllib.request.urlopen(a.url("/wps?service=WPS&request=GetCapabilities")).read()
    with open(os.path.join(a.dir, "htdocs", "caps.xml"), "wb") as f:
        f.write(caps)
    os.chmod(os.path.join(a.dir, "htdocs", "caps.xml"), 0o644)
    q = "?service=WPS&version=1.0.0&request="
    cases = [
        ("static file (GetCapabilities bytes)", "/caps.xml", None, False),
        ("GetCapabilities", "?service=WPS&request=GetCapabilities", None, True),
        ("DescribeProcess all", q + "DescribeProcess&identifier=all", None, True),
        ("Execute say_hello KVP", q + "Execute&identifier=say_hello&DataInputs=name=bench", None, True),
        ("Execute say_hello XML POST", "", HELLO_XML, True),
        ("Execute ultimate_question raw", q + "Execute&identifier=ultimate_question&RawDataOutput=answer", None, True),
        # hostile: answered 400, so its non-2xx column is its whole count
        ("XML namespace flood 2.8 MB (400)", "", namespace_flood(), True),
    ]

    def url(path, service, under):
        server = pywps if service == "pywps" else a
        return server.url(path) if not under else server.url(f"/{service}{path}")

    # warm-up at both concurrencies (threads, allocator arenas, caches), then RSS baseline
    for conns in (8, 64):
        for _, path, body, under in cases:
            wrk(url(path, "wps", under), conns, 1, body)
    rss_before = a.rss_kb()
    print(f"{len(caps)} byte GetCapabilities; ratios to the static file and to PyWPS 4.8 under "
          "mod_wsgi (processes=2 threads=5, an Apache of its own) measured in the same run")
    head = f"{'case':38} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs static':>9}"
    if pywps:
        head += f" {'PyWPS/s':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs PyWPS':>8}"
    print(head)
    static = {}
    for conns in (8, 16, 64):
        for name, path, body, under in cases:
            rps, p50, p99, bad, errs = wrk(url(path, "wps", under), conns, secs, body)
            if name.startswith("static"):
                static[conns] = rps
            ratio = rps / static[conns] * 100
            line = f"{name:38} {conns:>5} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {bad:>8} {ratio:>8.0f}%"
            if pywps and under:
                prps, _, pp99, pbad, perrs = wrk(url(path, "pywps", under), conns, secs, body)
                line += f" {prps:>8.0f} {pp99:>8.1f} {pbad:>8} {rps / prps if prps else 0:>7.0f}x"
                errs = socket_errors(errs, perrs)
            else:
                errs = socket_errors(errs, "")
            print(line + errs)
            sys.stdout.flush()
    # leak check: the same load again, sustained; RSS must stay flat
    rss_mid = a.rss_kb()
    for _ in range(2):
        for _, path, body, under in cases[1:]:
            wrk(url(path, "wps", under), 64, secs, body)
    rss_after = a.rss_kb()
    submitted, refused, accepted, done, ok = async_jobs(a, jobs)
    print(f"async: {submitted} sleep jobs (delay 0) submitted ({refused} refused), accepted in "
          f"{accepted:.2f} s, {ok} succeeded after {done:.2f} s")
    growth = (rss_after - rss_mid) / rss_mid * 100 if rss_mid else 0
    print(f"RSS of the Apache children: {rss_before} kB after warm-up, {rss_mid} kB after the "
          f"table, {rss_after} kB after {2 * (len(cases) - 1) * secs} s more at 64 connections "
          f"({growth:+.1f} %)")


if __name__ == "__main__":
    main()
