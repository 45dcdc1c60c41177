//! Input values as a request gives them (literal, bounding box, complex, reference) and the
//! outputs a request asks for: what every protocol front parses into and the engine checks.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub identifier: String,
    pub data: InputData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InputData {
    Literal(LiteralValue),
    BoundingBox(BoundingBox),
    Complex(ComplexValue),
    Reference(Reference),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LiteralValue {
    pub value: String,
    pub data_type: Option<String>,
    pub uom: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BoundingBox {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub crs: Option<String>,
    pub dimensions: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ComplexValue {
    pub mime_type: Option<String>,
    pub encoding: Option<String>,
    pub schema: Option<String>,
    /// The content as sent: the inner XML markup verbatim for XML content, the text otherwise.
    /// Shared, not copied: content as the request has it is a part of the request's body
    /// itself, which the checked inputs, a job's record and the process read (`"text".into()`
    /// makes a string of its own).
    pub content: ByteString,
    /// True when the content is XML markup (child elements), false for text/CDATA.
    pub is_xml: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reference {
    pub href: String,
    pub method: Option<String>,
    pub mime_type: Option<String>,
    pub encoding: Option<String>,
    pub schema: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub body_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutputRequest {
    pub identifier: String,
    pub as_reference: bool,
    pub mime_type: Option<String>,
    pub encoding: Option<String>,
    pub schema: Option<String>,
    pub uom: Option<String>,
}

/// Parses the KVP bounding box form `minx,miny,maxx,maxy[,crs[,dimensions]]`
/// (generally: 2d numbers — lower corner then upper corner — then optional CRS and
/// dimension count).
pub fn parse_kvp_bbox(value: &str) -> Result<BoundingBox, String> {
    let tokens: Vec<&str> = value.split(',').map(str::trim).collect();
    let mut numbers = Vec::new();
    let mut rest = tokens.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        match first.parse::<f64>() {
            Ok(n) if n.is_finite() => numbers.push(n),
            Ok(_) => return Err(format!("bounding box coordinate '{first}' is not finite")),
            Err(_) => break,
        }
        rest = tail;
    }
    if numbers.len() < 4 {
        return Err(match rest.first() {
            Some(t) => format!("bounding box coordinate '{t}' is not a number"),
            None => format!("bounding box '{value}' needs at least 4 coordinates"),
        });
    }
    if numbers.len() % 2 != 0 {
        return Err(format!(
            "bounding box '{value}' has an odd number ({}) of coordinates",
            numbers.len()
        ));
    }
    let crs = match rest.first() {
        None => None,
        Some(&"") => return Err(format!("bounding box '{value}' has an empty CRS")),
        Some(c) => Some((*c).to_owned()),
    };
    let dimensions = match rest.get(1) {
        None => None,
        Some(d) => Some(
            d.parse::<u32>()
                .map_err(|_| format!("bounding box dimensions '{d}' is not a positive integer"))?,
        ),
    };
    if rest.len() > 2 {
        return Err(format!(
            "bounding box '{value}' has trailing values after the dimensions"
        ));
    }
    let half = numbers.len() / 2;
    let upper = numbers.split_off(half);
    check_bbox(&numbers, &upper, dimensions)?;
    Ok(BoundingBox {
        lower: numbers,
        upper,
        crs,
        dimensions,
    })
}

/// Consistency checks shared by both encodings: equal corner lengths matching
/// `dimensions`, and lower <= upper on every axis.
pub fn check_bbox(lower: &[f64], upper: &[f64], dims: Option<u32>) -> Result<(), String> {
    if lower.is_empty() || lower.len() != upper.len() {
        return Err(format!(
            "bounding box corners have different or zero lengths ({} and {})",
            lower.len(),
            upper.len()
        ));
    }
    if let Some(d) = dims {
        if d as usize != lower.len() {
            return Err(format!(
                "bounding box declares {d} dimensions but its corners have {}",
                lower.len()
            ));
        }
    }
    for (i, (l, u)) in lower.iter().zip(upper).enumerate() {
        if l > u {
            return Err(format!(
                "bounding box lower corner ({l}) is greater than upper corner ({u}) on axis {}",
                i + 1
            ));
        }
    }
    Ok(())
}
