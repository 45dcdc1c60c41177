//! The GDAL/OGR demo processes of PyWPS (`feature_count`, `centroids`, `buffer`, `area`), with
//! the same identifiers, inputs and outputs.
//!
//! The GML input arrives as `Value::Complex`; its bytes (base64 decoded when sent so) are put
//! in a GDAL in-memory file (`/vsimem/mod_wps/<uuid>/…`, removed again when the process ends,
//! together with the `.gfs` schema file GDAL's GML driver writes beside it) and read with OGR.
//! Only the first layer of the input is used, as PyWPS does.

use super::literal_output;
use crate::model::{
    Allowed, Context, DataSpec, Format, InputSpec, Inputs, LiteralSpec, LiteralType, OutputSpec,
    OutputValue, Outputs, Process, ProcessDescription, ProcessError, Value,
};
use gdal::vector::{sql::Dialect, Geometry, LayerAccess, LayerOptions};
use gdal::{Dataset, DriverManager};

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

/// The bytes of complex input `id` (base64 decoded when sent so).
fn input_bytes(inputs: &Inputs, id: &str) -> Result<Vec<u8>, ProcessError> {
    match inputs.first(id) {
        Some(Value::Complex(c)) => c
            .data()
            .map_err(|e| ProcessError::Failed(format!("input '{id}': {e}"))),
        _ => Err(ProcessError::Failed(format!("input '{id}' is missing"))),
    }
}

/// Opens the vector data of complex input `id` from an in-memory file in `dir`.
fn open_layer_input(dir: &MemDir, inputs: &Inputs, id: &str) -> Result<Dataset, ProcessError> {
    let path = dir.path("input.gml");
    let mut data = input_bytes(inputs, id)?;
    // inline XML usually starts with white space, which GDAL's GML driver does not recognise
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data.drain(..start);
    gdal::vsi::create_mem_file(&path, data)
        .map_err(|e| failed("cannot store the input in memory", e))?;
    let ds = Dataset::open(&path)
        .map_err(|e| failed(&format!("input '{id}' is not readable vector data"), e))?;
    if ds.layer_count() == 0 {
        return Err(ProcessError::Failed(format!("input '{id}' has no layer")));
    }
    Ok(ds)
}

/// The geometries of the first layer, in order (features without geometry are skipped).
fn geometries(ds: &Dataset) -> Result<Vec<Geometry>, ProcessError> {
    let mut layer = ds
        .layer(0)
        .map_err(|e| failed("cannot read the layer", e))?;
    Ok(layer
        .features()
        .filter_map(|f| f.geometry().cloned())
        .collect())
}

/// `feature_count`: the number of features in a GML layer.
pub struct FeatureCount(ProcessDescription);

impl FeatureCount {
    pub fn new() -> Self {
        FeatureCount(description(
            "feature_count",
            "Feature count",
            "This process counts the number of features in a vector",
            "1.0",
            vec![complex_input("layer", "Layer")],
            vec![literal_output("count", "Count", LiteralType::Integer)],
        ))
    }
}

impl Process for FeatureCount {
    fn description(&self) -> &ProcessDescription {
        &self.0
    }
    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        let dir = MemDir::new();
        let ds = open_layer_input(&dir, inputs, "layer")?;
        let layer = ds
            .layer(0)
            .map_err(|e| failed("cannot read the layer", e))?;
        let count = layer.feature_count();
        ctx.progress(100, "features counted")?;
        Ok(Outputs(vec![(
            "count".into(),
            OutputValue::Literal(count.to_string()),
        )]))
    }
}

/// `area`: the area of each feature, as a JSON array of numbers in feature order (PyWPS
/// returns the Python `str()` of its list, which reads the same for plain numbers).
pub struct Area(ProcessDescription);

impl Area {
    pub fn new() -> Self {
        Area(description(
            "area",
            "Process area",
            "Process returns the area of each feature from a submitted GML file \
             (a JSON array of numbers, in feature order, in the units of the layer's CRS)",
            "1.0",
            vec![complex_input("layer", "Layer")],
            vec![literal_output("area", "Area", LiteralType::String)],
        ))
    }
}

impl Process for Area {
    fn description(&self) -> &ProcessDescription {
        &self.0
    }
    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        let dir = MemDir::new();
        let ds = open_layer_input(&dir, inputs, "layer")?;
        let areas: Vec<f64> = geometries(&ds)?.iter().map(Geometry::area).collect();
        ctx.progress(100, "areas computed")?;
        let json = serde_json::to_string(&areas).map_err(|e| failed("cannot encode areas", e))?;
        Ok(Outputs(vec![("area".into(), OutputValue::Literal(json))]))
    }
}

/// `centroids`: a GeoJSON FeatureCollection of the centroids of the features.
pub struct Centroids(ProcessDescription);

impl Centroids {
    pub fn new() -> Self {
        Centroids(description(
            "centroids",
            "Process Centroids",
            "Returns a GeoJSON with centroids of features from an uploaded GML.",
            "1.0",
            vec![complex_input("layer", "Layer")],
            vec![complex_output("out", "Referenced Output", JSON)],
        ))
    }
}

/// SQL identifier quoting (SQLite dialect).
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Process for Centroids {
    fn description(&self) -> &ProcessDescription {
        &self.0
    }
    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
        let dir = MemDir::new();
        let ds = open_layer_input(&dir, inputs, "layer")?;
        let (name, geom_col) = {
            let layer = ds
                .layer(0)
                .map_err(|e| failed("cannot read the layer", e))?;
            let col = layer
                .defn()
                .geom_fields()
                .next()
                .map(|g| g.name())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "GEOMETRY".into());
            (layer.name(), col)
        };
        // OGR has no centroid in the safe bindings; the SQLite dialect (SpatiaLite) has.
        let sql = format!(
            "SELECT ST_Centroid({}) AS centroid FROM {}",
            quote_ident(&geom_col),
            quote_ident(&name)
        );
        let mut rs = ds
            .execute_sql(&sql, None, Dialect::SQLITE)
            .map_err(|e| failed("cannot compute centroids", e))?
            .ok_or_else(|| ProcessError::Failed("cannot compute centroids".into()))?;
        let mut features = Vec::new();
        for f in rs.features() {
            let geometry = match f.geometry() {
                Some(g) => {
                    let json = g
                        .json()
                        .map_err(|e| failed("cannot encode a centroid", e))?;
                    serde_json::from_str::<serde_json::Value>(&json)
                        .map_err(|e| failed("cannot encode a centroid", e))?
                }
                None => serde_json::Value::Null,
            };
            features.push(serde_json::json!({
                "type": "Feature",
                "properties": {},
                "geometry": geometry,
            }));
        }
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
}

/// `buffer`: buffers of size `buffer` around the features of `poly_in`, as GML.
pub struct Buffer(ProcessDescription);

impl Buffer {
    pub fn new() -> Self {
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
        Buffer(description(
            "buffer",
            "GDAL Buffer process",
            "The process returns buffers around the input features, using the GDAL library",
            "0.1",
            vec![complex_input("poly_in", "Input vector file"), size],
            vec![complex_output("buff_out", "Buffered file", GML)],
        ))
    }
}

impl Process for Buffer {
    fn description(&self) -> &ProcessDescription {
        &self.0
    }
    fn execute(&self, inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
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
        let geoms = geometries(&ds)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ComplexValue;

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
                content: String::from_utf8(gml.to_vec()).unwrap(),
                ..Default::default()
            }),
        )]);
        let o = Area::new().execute(&inputs, &Context::detached()).unwrap();
        let Some(OutputValue::Literal(s)) = o.get("area") else {
            panic!()
        };
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn count_area_centroids() {
        let ctx = Context::detached();
        let o = FeatureCount::new()
            .execute(&layer("layer", POLYGONS), &ctx)
            .unwrap();
        assert_eq!(o.get("count"), Some(&OutputValue::Literal("3".into())));
        let areas = areas_of_gml(POLYGONS.as_bytes());
        assert_eq!(areas, vec![100.0, 200.0, 450.0]);
        let o = Centroids::new()
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
        let o = Buffer::new().execute(&inputs, &ctx).unwrap();
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
            Buffer::new().execute(&bad, &ctx),
            Err(ProcessError::Failed(_))
        ));
    }

    #[test]
    fn buffer_sizes_are_those_of_pywps() {
        let d = Buffer::new();
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
}
