//! JSON Schemas of inputs and outputs (for descriptions and the OpenAPI document) and the
//! JSON forms of values: typed literals, and which media types travel as text.

use crate::model::{Allowed, DataSpec, Format, LiteralSpec, LiteralType};
use serde_json::{json, Value as Json};

/// The JSON Schema of a value.
pub fn schema(data: &DataSpec) -> Json {
    match data {
        DataSpec::Literal(l) => literal_schema(l),
        DataSpec::Complex { formats, .. } => {
            let one: Vec<Json> = formats.iter().map(format_schema).collect();
            if one.len() == 1 {
                one.into_iter().next().unwrap_or_default()
            } else {
                json!({ "oneOf": one })
            }
        }
        DataSpec::BoundingBox { crss, dimensions } => {
            let n = dimensions * 2;
            json!({
                "type": "object",
                "format": "ogc-bbox",
                "required": ["bbox"],
                "properties": {
                    "bbox": {"type": "array", "minItems": n, "maxItems": n, "items": {"type": "number"}},
                    "crs": {"type": "string", "enum": crss, "default": crss.first()},
                },
            })
        }
    }
}

fn json_type(t: LiteralType) -> &'static str {
    match t {
        LiteralType::String => "string",
        LiteralType::Integer => "integer",
        LiteralType::Float => "number",
        LiteralType::Boolean => "boolean",
    }
}

/// A literal as JSON (numbers and booleans typed).
pub fn typed(t: LiteralType, v: &str) -> Json {
    let parsed = match t {
        LiteralType::Integer => v.trim().parse::<i64>().ok().map(Json::from),
        LiteralType::Float => v.trim().parse::<f64>().ok().map(Json::from),
        LiteralType::Boolean => match v.trim() {
            "true" | "1" => Some(Json::Bool(true)),
            "false" | "0" => Some(Json::Bool(false)),
            _ => None,
        },
        LiteralType::String => None,
    };
    parsed.unwrap_or_else(|| Json::String(v.to_owned()))
}

fn literal_schema(l: &LiteralSpec) -> Json {
    let t = json_type(l.data_type);
    let mut base = json!({ "type": t });
    if let Some(d) = &l.default {
        base["default"] = typed(l.data_type, d);
    }
    let values: Vec<Json> = l
        .allowed
        .iter()
        .filter_map(|a| match a {
            Allowed::Value(v) => Some(typed(l.data_type, v)),
            _ => None,
        })
        .collect();
    let ranges: Vec<Json> = l
        .allowed
        .iter()
        .filter_map(|a| match a {
            Allowed::Range { min, max, spacing } => {
                let mut r = json!({ "type": t, "minimum": min, "maximum": max });
                // a step from the minimum is a multiple of the step when the minimum is one
                if let Some(s) = spacing.filter(|s| *s > 0.0 && (min / s).fract() == 0.0) {
                    r["multipleOf"] = json!(s);
                }
                Some(r)
            }
            _ => None,
        })
        .collect();
    match (values.is_empty(), ranges.len()) {
        (true, 0) => base,
        (false, 0) => {
            base["enum"] = json!(values);
            base
        }
        (true, 1) => {
            let mut r = ranges.into_iter().next().unwrap_or_default();
            if let Some(d) = base.get("default") {
                r["default"] = d.clone();
            }
            r
        }
        _ => {
            let mut alts = ranges;
            if !values.is_empty() {
                alts.insert(0, json!({ "type": t, "enum": values }));
            }
            base["oneOf"] = json!(alts);
            base
        }
    }
}

/// Whether data of this media type is text (else it travels base64-encoded in JSON).
pub fn is_text(mime: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    m.starts_with("text/") || m.contains("xml") || m.contains("json")
}

fn format_schema(f: &Format) -> Json {
    let m = f.mime_type.to_ascii_lowercase();
    let mut s = if m.contains("json") {
        json!({ "type": "object", "contentMediaType": f.mime_type })
    } else {
        json!({ "type": "string", "contentMediaType": f.mime_type })
    };
    if !is_text(&m)
        || f.encoding
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("base64"))
    {
        s["contentEncoding"] = json!("base64");
    }
    if let Some(schema) = &f.schema {
        s["contentSchema"] = json!(schema);
    }
    s
}
