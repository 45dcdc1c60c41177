"""Drives a mod_wps service with OWSLib (Debian python3-owslib), as real clients do.

usage: python3 owslib_client.py URL
Lists, describes and executes the built-in processes; exits non-zero on any mismatch.
"""
import sys

from owslib.util import ServiceException

from owslib.wps import SYNC, BoundingBoxDataInput, WebProcessingService

url = sys.argv[1]
wps = WebProcessingService(url, version="1.0.0", skip_caps=True)
wps.getcapabilities()
ids = sorted(p.identifier for p in wps.processes)
assert ids == ["area", "boundingbox", "buffer", "centroids", "echo", "feature_count", "say_hello", "sleep", "testjson", "ultimate_question"], ids
assert wps.identification.title == "Test WPS", wps.identification.title

p = wps.describeprocess("say_hello")
assert [i.identifier for i in p.dataInputs] == ["name"]
assert p.dataInputs[0].dataType.endswith("string"), p.dataInputs[0].dataType
assert [o.identifier for o in p.processOutputs] == ["response"]

ex = wps.execute("say_hello", [("name", "OWSLib")], output=[("response", False)], mode=SYNC)
assert ex.status == "ProcessSucceeded", (ex.status, ex.errors)
assert ex.processOutputs[0].data == ["Hello OWSLib"], ex.processOutputs[0].data

ex = wps.execute("ultimate_question", [], mode=SYNC)
assert ex.processOutputs[0].data == ["42"], ex.processOutputs[0].data

ex = wps.execute("sleep", [("delay", "0.01")], mode=SYNC)
assert ex.processOutputs[0].data == ["done sleeping"], ex.processOutputs[0].data

box = BoundingBoxDataInput([46, 102, 47, 103], crs="EPSG:4326", dimensions=2)
ex = wps.execute("boundingbox", [("bboxin", box)], mode=SYNC)
assert ex.status == "ProcessSucceeded", (ex.status, [e.text for e in ex.errors])

# asynchronous execution, OWSLib's default: poll the status document until done
ex = wps.execute("sleep", [("delay", "0.1")], output=[("sleep_output", False)])
assert ex.status in ("ProcessAccepted", "ProcessStarted"), ex.status
assert ex.statusLocation.startswith(url.rsplit("/", 1)[0]), ex.statusLocation
seen = set()
for _ in range(100):
    ex.checkStatus(sleepSecs=0.1)
    seen.add(ex.status)
    if ex.isComplete():
        break
assert ex.isSucceded(), (ex.status, [e.text for e in ex.errors])
assert ex.processOutputs[0].data == ["done sleeping"], ex.processOutputs[0].data

# a stored output, fetched by reference
ex = wps.execute("testjson", [("name", "ref")], output=[("out", True)], mode=SYNC)
assert ex.isSucceded(), ex.status
ref = ex.processOutputs[0].reference
assert ref and "/outputs/" in ref, ref
import json
import urllib.request
with urllib.request.urlopen(ref) as resp:
    assert resp.headers["Content-Type"] == "application/json", resp.headers["Content-Type"]
    assert json.load(resp)["greeting"] == "Hello ref"

# errors come back as OWSLib ServiceExceptions carrying the ExceptionReport
try:
    wps.execute("say_hello", [], mode=SYNC)
    raise AssertionError("a missing input was accepted")
except ServiceException as e:
    assert 'exceptionCode="MissingParameterValue"' in str(e), str(e)
    assert 'locator="name"' in str(e), str(e)

print("owslib: ok")
