//! The GDAL/OGR demo processes of PyWPS (`feature_count`, `centroids`, `buffer`, `area`), with
//! the same identifiers, inputs and outputs.
//!
//! The GML input arrives as `Value::Complex`; its bytes (base64 decoded when sent so) are put
//! in a GDAL in-memory file (`/vsimem/mod_wps/<uuid>/…`, removed again when the process ends)
//! and read with OGR. Only the first layer of the input is used, as PyWPS does.
//!
//! Inputs are hostile: GDAL opens the job's in-memory copy only, only with the driver of the
//! declared media type (a "GML" that is really an OGR VRT pointing at URLs or local files is
//! refused), and with its network access off (no schema downloads, no `/vsicurl/`, no CRS
//! fetched by URL); see `open_layer_input` and `lock_down_gdal`. The work is done feature by
//! feature, checking for cancellation, so that a time limit stops it.

use super::{literal_output, Builtin};
use crate::model::format::{decode_base64, is_base64};
use crate::model::{
    Allowed, Context, DataSpec, Format, InputSpec, Inputs, LiteralSpec, LiteralType, OutputSpec,
    OutputValue, Outputs, ProcessDescription, ProcessError, Value,
};
use gdal::vector::{Geometry, LayerAccess, LayerOptions, OGRwkbGeometryType};
use gdal::{Dataset, DatasetOptions, DriverManager, GdalOpenFlags};

pub const GML: &str = "application/gml+xml";
pub const JSON: &str = "application/json";

fn failed(what: &str, e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Failed(format!("{what}: {e}"))
}

fn complex(mime: &str) -> DataSpec {
    DataSpec::Complex {
        formats: vec![Format::mime(mime)],
        maximum_megabytes: None,
    }
}

fn complex_input(id: &str, title: &str) -> InputSpec {
    super::input(id, title, complex(GML))
}

fn complex_output(id: &str, title: &str, mime: &str) -> OutputSpec {
    super::output(id, title, complex(mime))
}

fn description(
    id: &str,
    title: &str,
    abstract_: &str,
    version: &str,
    inputs: Vec<InputSpec>,
    outputs: Vec<OutputSpec>,
) -> ProcessDescription {
    ProcessDescription {
        identifier: id.into(),
        title: title.into(),
        abstract_: abstract_.into(),
        version: version.into(),
        inputs,
        outputs,
        store_supported: true,
        status_supported: true,
    }
}

/// A GDAL in-memory directory for one process run; removed (with everything in it) on drop.
struct MemDir(String);

impl MemDir {
    fn new() -> MemDir {
        MemDir(format!("/vsimem/mod_wps/{}", uuid::Uuid::new_v4()))
    }
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }
}

impl Drop for MemDir {
    fn drop(&mut self) {
        if let Ok(files) = gdal::vsi::read_dir(&self.0, true) {
            for f in files {
                let _ = gdal::vsi::unlink_mem_file(std::path::Path::new(&self.0).join(f));
            }
        }
        let _ = gdal::vsi::unlink_mem_file(&self.0);
    }
}

/// The bytes of complex input `id` (base64 decoded when sent so) without leading white space:
/// inline XML usually starts with a line break, which GDAL's GML driver does not recognise.
/// The content is copied once (text) or decoded once (base64), the white space left out.
fn input_bytes(inputs: &Inputs, id: &str) -> Result<Vec<u8>, ProcessError> {
    let Some(Value::Complex(c)) = inputs.first(id) else {
        return Err(ProcessError::Failed(format!("input '{id}' is missing")));
    };
    let skip = |data: &[u8]| {
        data.iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(data.len())
    };
    if is_base64(c.encoding.as_deref()) {
        let mut data = decode_base64(&c.content)
            .map_err(|e| ProcessError::Failed(format!("input '{id}': {e}")))?;
        // (decoded data seldom starts with white space)
        data.drain(..skip(&data));
        Ok(data)
    } else {
        let text = c.content.as_bytes();
        Ok(text[skip(text)..].to_vec())
    }
}

/// How GDAL may read a complex input: the one driver for its declared media type, the name
/// of its in-memory copy (drivers look at the extension too) and the open options.
struct Reader {
    driver: &'static str,
    file: &'static str,
    what: &'static str,
}

/// The reader for an input declared as `mime` (`None`: the input's default format, GML).
/// Media type parameters (`; subtype=gml/3.1.1`) are ignored.
fn reader_for(mime: Option<&str>) -> Result<Reader, String> {
    let base = mime
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| GML.into());
    match base.as_str() {
        GML | "text/xml" | "application/xml" => Ok(Reader {
            driver: "GML",
            file: "input.gml",
            what: "GML",
        }),
        "application/geo+json" | "application/vnd.geo+json" | JSON => Ok(Reader {
            driver: "GeoJSON",
            file: "input.geojson",
            what: "GeoJSON",
        }),
        other => Err(format!(
            "media type '{other}' cannot be read as vector data"
        )),
    }
}

/// A value no `/vsicurl/` file name equals and no curl proxy scheme: with it as the only
/// allowed `/vsicurl/` file and as HTTP(S) proxy, GDAL reaches nothing on the network
/// (curl fails with "Unsupported proxy scheme" before it connects anywhere).
const NO_NETWORK: &str = "mod-wps-no-network://";

/// Process-wide GDAL configuration that keeps GDAL off the network and away from files other
/// than the job's in-memory copy: no HTTP or `/vsicurl/` (whatever a driver or a CRS
/// definition asks for: GML application schemas, GeoJSON `crs` links, …), no downloaded WFS
/// schemas, no xlink resolution, no directory listing of sibling files, no Python in VRTs.
/// Set once, before the first GDAL use of these processes (setting a GDAL config option
/// while another thread reads it is not safe, so it is never changed afterwards).
fn lock_down_gdal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (key, value) in [
            ("GDAL_HTTP_PROXY", NO_NETWORK),
            ("GDAL_HTTPS_PROXY", NO_NETWORK),
            ("CPL_VSIL_CURL_ALLOWED_FILENAME", NO_NETWORK),
            ("GML_DOWNLOAD_WFS_SCHEMA", "NO"),
            ("GML_SKIP_RESOLVE_ELEMS", "ALL"),
            ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"),
            ("GDAL_VRT_ENABLE_PYTHON", "NO"),
        ] {
            let _ = gdal::config::set_config_option(key, value);
        }
    });
}

/// Opens the vector data of complex input `id` from an in-memory copy in `dir`, with only the
/// GDAL driver of the input's declared media type (a "GML" that really is an OGR VRT, a CSV,
/// a SQLite file … is refused, not opened by the driver it really needs) and that driver's
/// options against reading anything else (GML: no schema download, no application schema
/// registry, no `.gfs` written).
fn open_layer_input(dir: &MemDir, inputs: &Inputs, id: &str) -> Result<Dataset, ProcessError> {
    lock_down_gdal();
    let mime = match inputs.first(id) {
        Some(Value::Complex(c)) => c.mime_type.as_deref(),
        _ => None,
    };
    let reader =
        reader_for(mime).map_err(|e| ProcessError::Failed(format!("input '{id}': {e}")))?;
    let path = dir.path(reader.file);
    let data = input_bytes(inputs, id)?;
    gdal::vsi::create_mem_file(&path, data)
        .map_err(|e| failed("cannot store the input in memory", e))?;
    // an empty registry of application schemas (GDAL's own names schemas on the web)
    let registry = dir.path("gml_registry.xml");
    gdal::vsi::create_mem_file(&registry, b"<gml_registry/>".to_vec())
        .map_err(|e| failed("cannot store the input in memory", e))?;
    let registry_option = format!("REGISTRY={registry}");
    let gml_options = [
        "DOWNLOAD_SCHEMA=NO",
        "WRITE_GFS=NO",
        registry_option.as_str(),
    ];
    let options = DatasetOptions {
        open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
        allowed_drivers: Some(&[reader.driver]),
        open_options: (reader.driver == "GML").then_some(&gml_options[..]),
        sibling_files: None,
    };
    let ds = Dataset::open_ex(&path, options).map_err(|e| {
        failed(
            &format!("input '{id}' is not readable {} vector data", reader.what),
            e,
        )
    })?;
    if ds.layer_count() == 0 {
        return Err(ProcessError::Failed(format!("input '{id}' has no layer")));
    }
    Ok(ds)
}

/// Calls `f` on every feature of the first layer, in order. Checks for cancellation before
/// each feature (GDAL reads the input feature by feature, so a time limit stops the work
/// within one feature) and reports progress up to `max_percent` as the features are read.
fn for_each_feature(
    ds: &Dataset,
    ctx: &Context,
    max_percent: u32,
    mut f: impl FnMut(&gdal::vector::Feature) -> Result<(), ProcessError>,
) -> Result<usize, ProcessError> {
    let mut layer = ds
        .layer(0)
        .map_err(|e| failed("cannot read the layer", e))?;
    let total = layer.try_feature_count().unwrap_or(0) as usize;
    let mut n = 0;
    let mut reported = 0;
    for feature in layer.features() {
        if ctx.is_cancelled() {
            return Err(ProcessError::Cancelled);
        }
        f(&feature)?;
        n += 1;
        if let Some(pct) = (n.min(total) * max_percent as usize).checked_div(total) {
            if pct as u32 > reported {
                reported = pct as u32;
                ctx.progress(reported, &format!("read feature {n} of {total}"))?;
            }
        }
    }
    Ok(n)
}

/// The geometries of the first layer, in order (features without geometry are skipped).
fn geometries(
    ds: &Dataset,
    ctx: &Context,
    max_percent: u32,
) -> Result<Vec<Geometry>, ProcessError> {
    let mut out = Vec::new();
    for_each_feature(ds, ctx, max_percent, |f| {
        if let Some(g) = f.geometry() {
            out.push(g.clone());
        }
        Ok(())
    })?;
    Ok(out)
}

/// `feature_count`: the number of features in a GML layer.
pub fn feature_count() -> Builtin {
    Builtin::new(
        description(
            "feature_count",
            "Feature count",
            "This process counts the number of features in a vector",
            "1.0",
            vec![complex_input("layer", "Layer")],
            vec![literal_output("count", "Count", LiteralType::Integer)],
        ),
        count_features,
    )
}

fn count_features(inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    let dir = MemDir::new();
    let ds = open_layer_input(&dir, inputs, "layer")?;
    // counted feature by feature (not OGR's feature count, one call that cannot be
    // interrupted): a time limit stops the count
    let count = for_each_feature(&ds, ctx, 99, |_| Ok(()))?;
    ctx.progress(100, "features counted")?;
    Ok(Outputs(vec![(
        "count".into(),
        OutputValue::Literal(count.to_string()),
    )]))
}

/// `area`: the area of each feature, as a JSON array of numbers in feature order (PyWPS
/// returns the Python `str()` of its list, which reads the same for plain numbers).
pub fn area() -> Builtin {
    Builtin::new(
        description(
            "area",
            "Process area",
            "Process returns the area of each feature from a submitted GML file \
             (a JSON array of numbers, in feature order, in the units of the layer's CRS)",
            "1.0",
            vec![complex_input("layer", "Layer")],
            vec![literal_output("area", "Area", LiteralType::String)],
        ),
        areas,
    )
}

fn areas(inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    let dir = MemDir::new();
    let ds = open_layer_input(&dir, inputs, "layer")?;
    let mut areas = Vec::new();
    for_each_feature(&ds, ctx, 99, |f| {
        if let Some(g) = f.geometry() {
            areas.push(g.area());
        }
        Ok(())
    })?;
    ctx.progress(100, "areas computed")?;
    let json = serde_json::to_string(&areas).map_err(|e| failed("cannot encode areas", e))?;
    Ok(Outputs(vec![("area".into(), OutputValue::Literal(json))]))
}

/// `centroids`: a GeoJSON FeatureCollection of the centroids of the features.
pub fn centroids() -> Builtin {
    Builtin::new(
        description(
            "centroids",
            "Process Centroids",
            "Returns a GeoJSON with centroids of features from an uploaded GML.",
            "1.0",
            vec![complex_input("layer", "Layer")],
            vec![complex_output("out", "Referenced Output", JSON)],
        ),
        centroids_of_features,
    )
}

/// Sums for the centroid of a geometry, as GEOS (and so SpatiaLite's `ST_Centroid`) computes
/// it: the area-weighted centroid of its polygons; if they have no area, the length-weighted
/// centroid of its lines (polygon rings included); if none has a length, the mean of its
/// points. Coordinates are taken relative to the first point, for precision.
#[derive(Default)]
struct CentroidSum {
    origin: Option<(f64, f64)>,
    /// twice the signed area, and the area-weighted sums of triangle centroids (times 3)
    area2: f64,
    area_x: f64,
    area_y: f64,
    length: f64,
    line_x: f64,
    line_y: f64,
    points: f64,
    point_x: f64,
    point_y: f64,
}

impl CentroidSum {
    fn relative(&mut self, (x, y, _): (f64, f64, f64)) -> (f64, f64) {
        let (ox, oy) = *self.origin.get_or_insert((x, y));
        (x - ox, y - oy)
    }

    fn add_point(&mut self, p: (f64, f64)) {
        self.points += 1.0;
        self.point_x += p.0;
        self.point_y += p.1;
    }

    fn add_line(&mut self, pts: &[(f64, f64)]) {
        let mut length = 0.0;
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let l = (x1 - x0).hypot(y1 - y0);
            length += l;
            self.line_x += l * (x0 + x1) / 2.0;
            self.line_y += l * (y0 + y1) / 2.0;
        }
        self.length += length;
        if length == 0.0 {
            if let Some(&p) = pts.first() {
                self.add_point(p);
            }
        }
    }

    /// A polygon ring: the shell counts positive, holes negative, whatever their orientation.
    fn add_ring(&mut self, pts: &[(f64, f64)], hole: bool) {
        let (mut a2, mut cx, mut cy) = (0.0, 0.0, 0.0);
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let cross = x0 * y1 - x1 * y0;
            a2 += cross;
            cx += (x0 + x1) * cross;
            cy += (y0 + y1) * cross;
        }
        let sign = if (a2 < 0.0) != hole { -1.0 } else { 1.0 };
        self.area2 += sign * a2;
        self.area_x += sign * cx;
        self.area_y += sign * cy;
        self.add_line(pts);
    }

    fn vertices(&mut self, g: &Geometry) -> Vec<(f64, f64)> {
        let mut pts = Vec::new();
        g.get_points(&mut pts);
        pts.into_iter().map(|p| self.relative(p)).collect()
    }

    fn add(&mut self, g: &Geometry) {
        use OGRwkbGeometryType as T;
        match gdal::vector::geometry_type_flatten(g.geometry_type()) {
            T::wkbPoint => {
                if !g.is_empty() {
                    let p = self.relative(g.get_point(0));
                    self.add_point(p);
                }
            }
            T::wkbLineString | T::wkbLinearRing | T::wkbCircularString => {
                let pts = self.vertices(g);
                self.add_line(&pts);
            }
            T::wkbPolygon | T::wkbTriangle | T::wkbCurvePolygon => {
                for i in 0..g.geometry_count() {
                    let ring = self.vertices(&g.get_geometry(i));
                    self.add_ring(&ring, i > 0);
                }
            }
            _ => {
                for i in 0..g.geometry_count() {
                    self.add(&g.get_geometry(i));
                }
            }
        }
    }

    fn centroid(&self) -> Option<(f64, f64)> {
        let (ox, oy) = self.origin?;
        let (x, y) = if self.area2 != 0.0 {
            (
                self.area_x / (3.0 * self.area2),
                self.area_y / (3.0 * self.area2),
            )
        } else if self.length > 0.0 {
            (self.line_x / self.length, self.line_y / self.length)
        } else if self.points > 0.0 {
            (self.point_x / self.points, self.point_y / self.points)
        } else {
            return None;
        };
        Some((x + ox, y + oy))
    }
}

/// The centroid of `g` (2-D; `None` for an empty geometry). Curves count by their vertices.
fn centroid(g: &Geometry) -> Option<(f64, f64)> {
    let mut sum = CentroidSum::default();
    sum.add(g);
    sum.centroid()
}

fn centroids_of_features(inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    let dir = MemDir::new();
    let ds = open_layer_input(&dir, inputs, "layer")?;
    // computed feature by feature (formerly one SQLite-dialect query over the whole layer,
    // which a time limit could not stop)
    let mut features = Vec::new();
    for_each_feature(&ds, ctx, 99, |f| {
        let geometry = match f.geometry().and_then(centroid) {
            Some((x, y)) => serde_json::json!({"type": "Point", "coordinates": [x, y]}),
            None => serde_json::Value::Null,
        };
        features.push(serde_json::json!({
            "type": "Feature",
            "properties": {},
            "geometry": geometry,
        }));
        Ok(())
    })?;
    ctx.progress(100, "centroids computed")?;
    let doc = serde_json::json!({"type": "FeatureCollection", "features": features});
    Ok(Outputs(vec![(
        "out".into(),
        OutputValue::Complex {
            mime_type: JSON.into(),
            data: doc.to_string().into_bytes(),
        },
    )]))
}

/// `buffer`: buffers of size `buffer` around the features of `poly_in`, as GML.
pub fn buffer() -> Builtin {
    let mut size = InputSpec {
        identifier: "buffer".into(),
        title: "Buffer size".into(),
        abstract_: String::new(),
        min_occurs: 1,
        max_occurs: 1,
        data: DataSpec::Literal(LiteralSpec::any(LiteralType::Float)),
    };
    if let DataSpec::Literal(l) = &mut size.data {
        l.allowed = vec![
            Allowed::Value("0".into()),
            Allowed::Value("1".into()),
            Allowed::Value("10".into()),
            Allowed::Range {
                min: 10.0,
                max: 100.0,
                spacing: Some(10.0),
            },
            Allowed::Range {
                min: 100.0,
                max: 1000.0,
                spacing: Some(100.0),
            },
        ];
    }
    Builtin::new(
        description(
            "buffer",
            "GDAL Buffer process",
            "The process returns buffers around the input features, using the GDAL library",
            "0.1",
            vec![complex_input("poly_in", "Input vector file"), size],
            vec![complex_output("buff_out", "Buffered file", GML)],
        ),
        buffer_features,
    )
}

fn buffer_features(inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    let size: f64 = inputs
        .literal("buffer")
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ProcessError::Failed("input 'buffer' is missing".into()))?;
    let dir = MemDir::new();
    let ds = open_layer_input(&dir, inputs, "poly_in")?;
    let (srs, name) = {
        let layer = ds
            .layer(0)
            .map_err(|e| failed("cannot read the layer", e))?;
        (layer.spatial_ref(), layer.name())
    };
    let geoms = geometries(&ds, ctx, 0)?;
    let out_path = dir.path("buffer.gml");
    {
        let driver = DriverManager::get_driver_by_name("GML")
            .map_err(|e| failed("GDAL has no GML driver", e))?;
        let mut out = driver
            .create_vector_only(&out_path)
            .map_err(|e| failed("cannot create the output", e))?;
        let mut layer = out
            .create_layer(LayerOptions {
                name: if name.is_empty() { "buffer" } else { &name },
                srs: srs.as_ref(),
                ty: gdal::vector::OGRwkbGeometryType::wkbPolygon,
                options: None,
            })
            .map_err(|e| failed("cannot create the output layer", e))?;
        let n = geoms.len().max(1);
        for (i, g) in geoms.iter().enumerate() {
            let b = g
                .buffer(size, 30)
                .map_err(|e| failed(&format!("cannot buffer feature {i}"), e))?;
            layer
                .create_feature(b)
                .map_err(|e| failed("cannot write a feature", e))?;
            let pct = ((i + 1) * 100 / n) as u32;
            ctx.progress(
                pct.min(99),
                &format!("buffered feature {} of {}", i + 1, geoms.len()),
            )?;
        }
        out.close()
            .map_err(|e| failed("cannot write the output", e))?;
    }
    let data = gdal::vsi::get_vsi_mem_file_bytes_owned(&out_path)
        .map_err(|e| failed("cannot read the output", e))?;
    Ok(Outputs(vec![(
        "buff_out".into(),
        OutputValue::Complex {
            mime_type: GML.into(),
            data,
        },
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ComplexValue, Process};

    pub(crate) const POLYGONS: &str = include_str!("../../../tests/data/polygons.gml");

    fn layer(id: &str, content: &str) -> Inputs {
        Inputs(vec![(
            id.into(),
            Value::Complex(ComplexValue {
                mime_type: Some(GML.into()),
                content: content.into(),
                is_xml: true,
                ..Default::default()
            }),
        )])
    }

    fn areas_of_gml(gml: &[u8]) -> Vec<f64> {
        let inputs = Inputs(vec![(
            "layer".into(),
            Value::Complex(ComplexValue {
                content: std::str::from_utf8(gml).unwrap().into(),
                ..Default::default()
            }),
        )]);
        let o = area().execute(&inputs, &Context::detached()).unwrap();
        let Some(OutputValue::Literal(s)) = o.get("area") else {
            panic!()
        };
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn count_area_centroids() {
        let ctx = Context::detached();
        let o = feature_count()
            .execute(&layer("layer", POLYGONS), &ctx)
            .unwrap();
        assert_eq!(o.get("count"), Some(&OutputValue::Literal("3".into())));
        let areas = areas_of_gml(POLYGONS.as_bytes());
        assert_eq!(areas, vec![100.0, 200.0, 450.0]);
        let o = centroids()
            .execute(&layer("layer", POLYGONS), &ctx)
            .unwrap();
        let Some(OutputValue::Complex { mime_type, data }) = o.get("out") else {
            panic!()
        };
        assert_eq!(mime_type, JSON);
        let v: serde_json::Value = serde_json::from_slice(data).unwrap();
        let pts: Vec<Vec<f64>> = v["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| serde_json::from_value(f["geometry"]["coordinates"].clone()).unwrap())
            .collect();
        assert_eq!(pts, vec![vec![5.0, 5.0], vec![30.0, 5.0], vec![10.0, 30.0]]);
    }

    #[test]
    fn buffer_grows_areas_and_reports_progress() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let ctx = Context::new(
            Default::default(),
            std::sync::Arc::new(move |p, _m: &str| s2.lock().unwrap().push(p)),
        );
        let mut inputs = layer("poly_in", POLYGONS);
        inputs
            .0
            .push(("buffer".into(), Value::Literal("10".into())));
        let o = buffer().execute(&inputs, &ctx).unwrap();
        let Some(OutputValue::Complex { mime_type, data }) = o.get("buff_out") else {
            panic!()
        };
        assert_eq!(mime_type, GML);
        let areas = areas_of_gml(data);
        assert_eq!(areas.len(), 3);
        // a square of side s buffered by d: s² + 4sd + πd² (minus a little for the polygonal arcs)
        let expected = [100.0 + 400.0 + 314.159, 200.0 + 600.0 + 314.159];
        for (a, e) in areas.iter().zip(expected) {
            assert!((a - e).abs() < 1.0, "{a} vs {e}");
        }
        assert!(areas[2] > 450.0 + 10.0 * (30.0 + 30.0 + 42.4));
        assert_eq!(seen.lock().unwrap().len(), 3);
        // bad input: a clean failure, not a crash
        let mut bad = layer("poly_in", "this is not GML");
        bad.0.push(("buffer".into(), Value::Literal("10".into())));
        assert!(matches!(
            buffer().execute(&bad, &ctx),
            Err(ProcessError::Failed(_))
        ));
    }

    #[test]
    fn buffer_sizes_are_those_of_pywps() {
        let d = buffer();
        let DataSpec::Literal(l) = &d.description().inputs[1].data else {
            panic!()
        };
        for ok in ["0", "1", "10", "20", "100", "300", "1000"] {
            assert!(l.check(ok).is_ok(), "{ok}");
        }
        for bad in ["2", "15", "150", "1100", "-10"] {
            assert!(l.check(bad).is_err(), "{bad}");
        }
    }

    /// A loopback HTTP server that answers every request with `body` and records the request
    /// lines it sees (it should see none).
    fn loopback_server(body: &'static str) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut first = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let _ = reader.read_line(&mut first);
                s2.lock().unwrap().push(first.trim().to_owned());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (port, seen)
    }

    fn complex(id: &str, mime: &str, content: &str) -> Inputs {
        Inputs(vec![(
            id.into(),
            Value::Complex(ComplexValue {
                mime_type: Some(mime.into()),
                content: content.into(),
                ..Default::default()
            }),
        )])
    }

    /// An OGR VRT document whose layer reads `source`.
    fn vrt(source: &str, layer: &str) -> String {
        format!(
            r#"<OGRVRTDataSource><OGRVRTLayer name="l"><SrcDataSource>{source}</SrcDataSource><SrcLayer>{layer}</SrcLayer><GeometryType>wkbPoint</GeometryType><GeometryField encoding="PointFromColumns" x="x" y="y"/></OGRVRTLayer></OGRVRTDataSource>"#
        )
    }

    const CSV: &str = "x,y,name\n1,2,a\n3,4,b\n5,6,c\n";

    #[test]
    fn a_vrt_sent_as_gml_reads_neither_urls_nor_local_files() {
        let (port, seen) = loopback_server(CSV);
        let dir = std::env::temp_dir().join(format!("mod_wps-geo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret.csv");
        std::fs::write(&secret, CSV).unwrap();
        let url = format!("/vsicurl/http://127.0.0.1:{port}/data.csv");
        let local = vrt(&secret.display().to_string(), "secret");
        // with the GML namespace in a comment, so that the GML driver looks at it too
        let commented = format!("<!-- http://www.opengis.net/gml -->{local}");
        for (doc, mime) in [
            (vrt(&url, "data"), GML),
            (local.clone(), GML),
            (local.clone(), "text/xml"),
            (commented, GML),
            (local.clone(), "application/geo+json"),
        ] {
            for p in [&feature_count() as &dyn Process, &area(), &centroids()] {
                let r = p.execute(&complex("layer", mime, &doc), &Context::detached());
                match r {
                    Err(ProcessError::Failed(m)) => assert!(
                        m.contains("is not readable") || m.contains("has no layer"),
                        "{m}"
                    ),
                    other => panic!(
                        "{} on {doc} as {mime}: {other:?}",
                        p.description().identifier
                    ),
                }
            }
        }
        assert_eq!(*seen.lock().unwrap(), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn media_types_choose_the_driver() {
        assert_eq!(reader_for(None).unwrap().driver, "GML");
        assert_eq!(
            reader_for(Some("text/xml; subtype=gml/3.1.1"))
                .unwrap()
                .driver,
            "GML"
        );
        assert_eq!(
            reader_for(Some("Application/GML+XML")).unwrap().driver,
            "GML"
        );
        assert_eq!(
            reader_for(Some("application/geo+json")).unwrap().driver,
            "GeoJSON"
        );
        assert_eq!(reader_for(Some(JSON)).unwrap().driver, "GeoJSON");
        for other in ["text/csv", "application/x-sqlite3", "application/zip", ""] {
            assert!(reader_for(Some(other)).is_err(), "{other}");
        }
        // GeoJSON declared as GML is not read, and the other way round
        let geojson = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}]}"#;
        let count = |mime: &str, content: &str| {
            feature_count().execute(&complex("layer", mime, content), &Context::detached())
        };
        assert!(matches!(count(GML, geojson), Err(ProcessError::Failed(_))));
        assert!(matches!(
            count("application/geo+json", POLYGONS),
            Err(ProcessError::Failed(_))
        ));
        assert_eq!(
            count("application/geo+json", geojson).unwrap().get("count"),
            Some(&OutputValue::Literal("1".into()))
        );
        assert!(matches!(
            count("text/csv", CSV),
            Err(ProcessError::Failed(_))
        ));
    }

    /// polygons.gml as a WFS response whose schemaLocation names a DescribeFeatureType URL.
    fn wfs_polygons(schema_url: &str) -> String {
        let members = &POLYGONS[POLYGONS.find("<gml:featureMember>").unwrap()
            ..POLYGONS.rfind("</ogr:FeatureCollection>").unwrap()];
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<wfs:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml" xmlns:wfs="http://www.opengis.net/wfs" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://ogr.maptools.org/ {schema_url} http://www.opengis.net/wfs http://schemas.opengis.net/wfs/1.0.0/WFS-basic.xsd">
{members}</wfs:FeatureCollection>"#
        )
    }

    #[test]
    fn schemas_named_in_gml_are_not_downloaded() {
        let (port, seen) =
            loopback_server("<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"/>");
        let url = format!(
            "http://127.0.0.1:{port}/wfs?SERVICE=WFS&amp;VERSION=1.0.0&amp;REQUEST=DescribeFeatureType&amp;TYPENAME=ogr:polys"
        );
        let doc = wfs_polygons(&url);
        let o = feature_count()
            .execute(&complex("layer", GML, &doc), &Context::detached())
            .unwrap();
        assert_eq!(o.get("count"), Some(&OutputValue::Literal("3".into())));
        let o = area()
            .execute(&complex("layer", GML, &doc), &Context::detached())
            .unwrap();
        assert_eq!(
            o.get("area"),
            Some(&OutputValue::Literal("[100.0,200.0,450.0]".into()))
        );
        // a CRS named by URL, in GML and in GeoJSON, is not fetched either
        let gml = POLYGONS.replace("EPSG:3035", &format!("http://127.0.0.1:{port}/crs/3035"));
        let o = feature_count()
            .execute(&complex("layer", GML, &gml), &Context::detached())
            .unwrap();
        assert_eq!(o.get("count"), Some(&OutputValue::Literal("3".into())));
        let geojson = format!(
            r#"{{"type":"FeatureCollection","crs":{{"type":"link","properties":{{"href":"http://127.0.0.1:{port}/crs.wkt","type":"ogcwkt"}}}},"features":[{{"type":"Feature","properties":{{}},"geometry":{{"type":"Point","coordinates":[1,2]}}}}]}}"#
        );
        let o = feature_count()
            .execute(
                &complex("layer", "application/geo+json", &geojson),
                &Context::detached(),
            )
            .unwrap();
        assert_eq!(o.get("count"), Some(&OutputValue::Literal("1".into())));
        assert_eq!(*seen.lock().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn centroids_are_those_of_spatialite() {
        use gdal::vector::sql::Dialect;
        let wkts = [
            "POINT (3 4)",
            "MULTIPOINT ((0 0),(4 0),(4 4))",
            "LINESTRING (0 0,10 0,10 5)",
            "MULTILINESTRING ((0 0,10 0),(0 5,0 10))",
            "POLYGON ((0 0,10 0,10 10,0 10,0 0))",
            "POLYGON ((0 0,0 10,10 10,10 0,0 0),(2 2,4 2,4 4,2 4,2 2))",
            "MULTIPOLYGON (((0 0,10 0,10 10,0 10,0 0)),((20 0,40 0,40 10,20 10,20 0)))",
            "POLYGON ((630000 250000,630100 250000,630100 250300,630000 250000))",
            "GEOMETRYCOLLECTION (POINT (100 100),LINESTRING (0 0,2 0),POLYGON ((0 0,1 0,1 1,0 0)))",
            "GEOMETRYCOLLECTION (POINT (100 100),LINESTRING (0 0,2 0))",
            "POLYGON ((0 0,10 0,20 0,0 0))",
            "LINESTRING (5 5,5 5)",
        ];
        let mem = DriverManager::get_driver_by_name("Memory")
            .unwrap()
            .create_vector_only("")
            .unwrap();
        for wkt in wkts {
            let g = Geometry::from_wkt(wkt).unwrap();
            let (x, y) = centroid(&g).unwrap();
            let sql = format!("SELECT ST_Centroid(ST_GeomFromText('{wkt}'))");
            let mut rs = mem
                .execute_sql(&sql, None, Dialect::SQLITE)
                .unwrap()
                .unwrap();
            let f = rs.features().next().unwrap();
            let (ex, ey, _) = f.geometry().unwrap().get_point(0);
            assert!(
                (x - ex).abs() < 1e-6 && (y - ey).abs() < 1e-6,
                "{wkt}: ({x} {y}) vs ({ex} {ey})"
            );
        }
        assert_eq!(
            centroid(&Geometry::from_wkt("POLYGON EMPTY").unwrap()),
            None
        );
    }

    /// A GML layer of `n` points.
    fn many_points(n: usize) -> String {
        let mut s = String::from(
            r#"<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">"#,
        );
        for i in 0..n {
            s.push_str(&format!(
                r#"<gml:featureMember><ogr:p fid="p.{i}"><ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>{i},0 {i},1 {j},1 {i},0</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty></ogr:p></gml:featureMember>"#,
                j = i + 1
            ));
        }
        s.push_str("</ogr:FeatureCollection>");
        s
    }

    #[test]
    fn a_time_limit_stops_the_gdal_work() {
        const N: usize = 5000;
        let gml = many_points(N);
        for p in [
            &feature_count() as &dyn Process,
            &area(),
            &centroids(),
            &buffer(),
        ] {
            let id = &p.description().inputs[0].identifier;
            let mut inputs = complex(id, GML, &gml);
            inputs.0.push(("buffer".into(), Value::Literal("1".into())));
            // the job's time limit is reached at the first progress report
            let token = std::sync::Arc::new(crate::model::CancelToken::default());
            let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let (t2, c2) = (token.clone(), calls.clone());
            let ctx = Context::new(
                token,
                std::sync::Arc::new(move |pct, m: &str| {
                    c2.lock().unwrap().push((pct, m.to_owned()));
                    t2.cancel();
                }),
            );
            let r = p.execute(&inputs, &ctx);
            let name = &p.description().identifier;
            assert_eq!(r, Err(ProcessError::Cancelled), "{name}");
            // stopped right after it: one report, at the start, not after all the work
            let calls = calls.lock().unwrap();
            assert_eq!(calls.len(), 1, "{name}: {calls:?}");
            assert!(calls[0].0 < 5, "{name}: {calls:?}");
        }
        // without a time limit, the same work reports progress all along
        let calls = std::sync::Arc::new(std::sync::Mutex::new(0));
        let c2 = calls.clone();
        let ctx = Context::new(
            Default::default(),
            std::sync::Arc::new(move |_, _: &str| *c2.lock().unwrap() += 1),
        );
        let o = feature_count()
            .execute(&complex("layer", GML, &gml), &ctx)
            .unwrap();
        assert_eq!(o.get("count"), Some(&OutputValue::Literal(N.to_string())));
        assert!(*calls.lock().unwrap() >= 50);
    }
}
