#!/usr/bin/env python3
"""Drives mod_wps's OGC API - Processes with OWSLib's owslib.ogcapi.processes (a client no one
here wrote): conformance, OpenAPI, list, describe, execute (sync and async). Usage:
owslib_ogcapi.py http://127.0.0.1:PORT/wps/api"""
import sys
import time

import owslib
from owslib.ogcapi.processes import Processes

url = sys.argv[1]
p = Processes(url)
print("OWSLib", owslib.__version__)

classes = p.conformance()["conformsTo"]
assert any(c.endswith("/conf/job-list") for c in classes), classes
assert p.api()["openapi"].startswith("3.0"), "OpenAPI via the service-desc link"

ids = [x["id"] for x in p.processes()]
for want in ("say_hello", "sleep", "ultimate_question", "boundingbox"):
    assert want in ids, ids

d = p.process("say_hello")
assert d["inputs"]["name"]["schema"]["type"] == "string", d
assert "async-execute" in d["jobControlOptions"], d

r = p.execute("say_hello", inputs={"name": "OWSLib"})
assert r == {"response": "Hello OWSLib"}, r
r = p.execute("ultimate_question", inputs={})
assert r == {"answer": "42"}, r

# asynchronous: 201 with a statusInfo body (not null) and a Location
job = p.execute("sleep", inputs={"delay": 0.1}, async_=True)
assert job["status"] == "accepted" and job["type"] == "process", job
location = p.response_headers["Location"]
job_id = job["jobID"]
assert location.endswith("/jobs/" + job_id), location
deadline = time.time() + 30
while True:
    status = p._request(path="jobs/" + job_id)
    if status["status"] == "successful":
        break
    assert status["status"] in ("accepted", "running") and time.time() < deadline, status
    time.sleep(0.1)
results = p._request(path="jobs/%s/results" % job_id)
assert "sleep_output" in results, results
print("owslib-ogcapi: ok")
