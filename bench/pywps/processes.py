"""The PyWPS side of `bench/bench.py --pywps`: the demo processes with the identifiers, inputs
and outputs mod_wps's built-ins have (say_hello, ultimate_question, sleep, and the four GDAL
processes). Written for the benchmark: the GDAL processes do the work mod_wps's do, feature
by feature with osgeo.ogr on the same GML (the PyWPS demo's own versions shell out to
ogr2ogr and use shapely or lxml, which would only be slower)."""
import json
import os
import time

from pywps import (ComplexInput, ComplexOutput, Format, LiteralInput, LiteralOutput, Process)

GML = Format("application/gml+xml")
JSON = Format("application/json")


def say_hello():
    def handler(request, response):
        response.outputs["response"].data = "Hello " + request.inputs["name"][0].data
        return response
    return Process(handler, identifier="say_hello", title="Process Say Hello", version="1.3.3.7",
                   inputs=[LiteralInput("name", "Input name", data_type="string")],
                   outputs=[LiteralOutput("response", "Output response", data_type="string")],
                   store_supported=True, status_supported=True)


def ultimate_question():
    def handler(request, response):
        response.outputs["answer"].data = "42"
        return response
    return Process(handler, identifier="ultimate_question",
                   title="Answer to the ultimate question",
                   outputs=[LiteralOutput("answer", "Answer", data_type="string")],
                   store_supported=True, status_supported=True)


def sleep():
    def handler(request, response):
        delay = request.inputs["delay"][0].data
        for pct in (20, 40, 60, 80):
            time.sleep(delay)
            response.update_status("sleeping", pct)
        time.sleep(delay)
        response.outputs["sleep_output"].data = "done sleeping"
        return response
    return Process(handler, identifier="sleep", title="Sleep Process",
                   inputs=[LiteralInput("delay", "Delay between every update", data_type="float")],
                   outputs=[LiteralOutput("sleep_output", "Sleep Output", data_type="string")],
                   store_supported=True, status_supported=True)


def open_layer(request, name):
    from osgeo import ogr
    ds = ogr.Open(request.inputs[name][0].file)
    if ds is None:
        raise Exception("input '%s' is not readable GML vector data" % name)
    return ds


def features(ds):
    layer = ds.GetLayer(0)
    f = layer.GetNextFeature()
    while f is not None:
        yield f
        f = layer.GetNextFeature()


def gdal_process(identifier, title, handler, inputs, outputs):
    return Process(handler, identifier=identifier, title=title, inputs=inputs, outputs=outputs,
                   store_supported=True, status_supported=True)


def feature_count():
    def handler(request, response):
        ds = open_layer(request, "layer")
        response.outputs["count"].data = sum(1 for _ in features(ds))
        return response
    return gdal_process("feature_count", "Feature count", handler,
                        [ComplexInput("layer", "Layer", supported_formats=[GML])],
                        [LiteralOutput("count", "Count", data_type="integer")])


def area():
    def handler(request, response):
        ds = open_layer(request, "layer")
        out = [f.GetGeometryRef().GetArea() for f in features(ds) if f.GetGeometryRef()]
        response.outputs["area"].data = json.dumps(out)
        return response
    return gdal_process("area", "Process area", handler,
                        [ComplexInput("layer", "Layer", supported_formats=[GML])],
                        [LiteralOutput("area", "Area", data_type="string")])


def centroids():
    def handler(request, response):
        ds = open_layer(request, "layer")
        out = []
        for f in features(ds):
            g = f.GetGeometryRef()
            geom = None
            if g is not None and not g.IsEmpty():
                c = g.Centroid()
                geom = {"type": "Point", "coordinates": [c.GetX(), c.GetY()]}
            out.append({"type": "Feature", "properties": {}, "geometry": geom})
        response.outputs["out"].data = json.dumps({"type": "FeatureCollection", "features": out})
        return response
    return gdal_process("centroids", "Process Centroids", handler,
                        [ComplexInput("layer", "Layer", supported_formats=[GML])],
                        [ComplexOutput("out", "Referenced Output", supported_formats=[JSON])])


def buffer():
    def handler(request, response):
        from osgeo import ogr
        size = float(request.inputs["buffer"][0].data)
        ds = open_layer(request, "poly_in")
        layer = ds.GetLayer(0)
        path = os.path.join(response.process.workdir, "buffer.gml")
        out = ogr.GetDriverByName("GML").CreateDataSource(path)
        out_layer = out.CreateLayer(layer.GetName() or "buffer", layer.GetSpatialRef(), ogr.wkbPolygon)
        for f in features(ds):
            g = f.GetGeometryRef()
            if g is None:
                continue
            o = ogr.Feature(out_layer.GetLayerDefn())
            o.SetGeometryDirectly(g.Buffer(size, 30))
            out_layer.CreateFeature(o)
        out = None
        response.outputs["buff_out"].file = path
        return response
    return gdal_process("buffer", "GDAL Buffer process", handler,
                        [ComplexInput("poly_in", "Input vector file", supported_formats=[GML]),
                         LiteralInput("buffer", "Buffer size", data_type="float")],
                        [ComplexOutput("buff_out", "Buffered file", supported_formats=[GML])])


PROCESSES = [say_hello(), ultimate_question(), sleep(), feature_count(), area(), centroids(),
             buffer()]
