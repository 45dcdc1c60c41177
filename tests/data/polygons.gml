<?xml version="1.0" encoding="utf-8"?>
<!-- Three polygons for the geo tests (EPSG:3035, metres): a = 10x10 square at (0,0),
     area 100, centroid (5,5); b = 20x10 rectangle at (20,0), area 200, centroid (30,5);
     c = right triangle (0,20) (30,20) (0,50), area 450, centroid (10,30). -->
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
  <gml:featureMember>
    <ogr:polys fid="polys.0">
      <ogr:geometryProperty><gml:Polygon srsName="EPSG:3035"><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>0,0 10,0 10,10 0,10 0,0</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty>
      <ogr:name>a</ogr:name>
    </ogr:polys>
  </gml:featureMember>
  <gml:featureMember>
    <ogr:polys fid="polys.1">
      <ogr:geometryProperty><gml:Polygon srsName="EPSG:3035"><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>20,0 40,0 40,10 20,10 20,0</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty>
      <ogr:name>b</ogr:name>
    </ogr:polys>
  </gml:featureMember>
  <gml:featureMember>
    <ogr:polys fid="polys.2">
      <ogr:geometryProperty><gml:Polygon srsName="EPSG:3035"><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>0,20 30,20 0,50 0,20</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty>
      <ogr:name>c</ogr:name>
    </ogr:polys>
  </gml:featureMember>
</ogr:FeatureCollection>
