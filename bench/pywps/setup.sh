#!/usr/bin/env bash
# Installs PyWPS 4.8 under Apache mod_wsgi for `bench/bench.py --pywps`, as the seed deployed
# it: Debian's libapache2-mod-wsgi-py3 (the module is loaded by the benchmark's own httpd.conf,
# not enabled in the system Apache) and PyWPS from PyPI in a venv under target/ (never
# committed). The venv sees Debian's python3-gdal (osgeo.ogr) for the GDAL processes.
# As root (or with sudo). Idempotent; prints the venv's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${PYWPS_VENV:-$here/../../target/bench-pywps/venv}
run() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
for p in libapache2-mod-wsgi-py3 python3-gdal python3-venv; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -qq
    run apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pywps, sys; sys.exit(pywps.__version__ != "4.8.1")' 2>/dev/null; then
    mkdir -p "$(dirname "$venv")"
    # mod_wsgi embeds Debian's python3: the venv must be made from the same interpreter
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "pywps==4.8.1"
fi
"$venv/bin/python" -c 'import pywps, osgeo.ogr' >/dev/null
echo "$venv"
