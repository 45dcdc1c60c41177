//! The parsed form of a WPS request and the protocol error type.
//! Both request parsers (KVP and XML) produce these types; the engine consumes them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// OGC exception codes (WPS 1.0.0 / OWS 1.1) with the HTTP status each maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionCode {
    MissingParameterValue,
    InvalidParameterValue,
    VersionNegotiationFailed,
    OperationNotSupported,
    OptionNotSupported,
    NoApplicableCode,
    ServerBusy,
    FileSizeExceeded,
    StorageNotSupported,
    NotEnoughStorage,
}

impl ExceptionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingParameterValue => "MissingParameterValue",
            Self::InvalidParameterValue => "InvalidParameterValue",
            Self::VersionNegotiationFailed => "VersionNegotiationFailed",
            Self::OperationNotSupported => "OperationNotSupported",
            Self::OptionNotSupported => "OptionNotSupported",
            Self::NoApplicableCode => "NoApplicableCode",
            Self::ServerBusy => "ServerBusy",
            Self::FileSizeExceeded => "FileSizeExceeded",
            Self::StorageNotSupported => "StorageNotSupported",
            Self::NotEnoughStorage => "NotEnoughStorage",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Self::MissingParameterValue
            | Self::InvalidParameterValue
            | Self::VersionNegotiationFailed
            | Self::StorageNotSupported => 400,
            Self::OperationNotSupported | Self::OptionNotSupported => 501,
            Self::NoApplicableCode => 500,
            Self::ServerBusy => 503,
            Self::FileSizeExceeded => 413,
            Self::NotEnoughStorage => 507,
        }
    }
}

/// A protocol error: becomes an `ows:ExceptionReport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WpsError {
    pub code: ExceptionCode,
    pub locator: Option<String>,
    pub text: String,
}

impl WpsError {
    pub fn new(code: ExceptionCode, locator: Option<&str>, text: impl Into<String>) -> Self {
        WpsError {
            code,
            locator: locator.map(str::to_owned),
            text: text.into(),
        }
    }
    pub fn missing(locator: &str, text: impl Into<String>) -> Self {
        Self::new(ExceptionCode::MissingParameterValue, Some(locator), text)
    }
    pub fn invalid(locator: &str, text: impl Into<String>) -> Self {
        Self::new(ExceptionCode::InvalidParameterValue, Some(locator), text)
    }
    pub fn no_applicable(text: impl Into<String>) -> Self {
        Self::new(ExceptionCode::NoApplicableCode, None, text)
    }
}

impl fmt::Display for WpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code.as_str())?;
        if let Some(l) = &self.locator {
            write!(f, " ({l})")?;
        }
        write!(f, ": {}", self.text)
    }
}

pub type WpsResult<T> = Result<T, WpsError>;

/// A parsed WPS request (either encoding).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    GetCapabilities(GetCapabilities),
    DescribeProcess(DescribeProcess),
    Execute(Execute),
}

impl Request {
    pub fn language(&self) -> Option<&str> {
        match self {
            Request::GetCapabilities(r) => r.language.as_deref(),
            Request::DescribeProcess(r) => r.language.as_deref(),
            Request::Execute(r) => r.language.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetCapabilities {
    /// `AcceptVersions` as sent (None when absent).
    pub accept_versions: Option<Vec<String>>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DescribeProcess {
    /// One or more identifiers; `all` is kept as the literal string "all".
    pub identifiers: Vec<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execute {
    pub identifier: String,
    pub inputs: Vec<Input>,
    pub response: ResponseForm,
    pub language: Option<String>,
}

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
    pub content: String,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResponseForm {
    Document(ResponseDocument),
    Raw(OutputRequest),
}

impl Default for ResponseForm {
    fn default() -> Self {
        ResponseForm::Document(ResponseDocument::default())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseDocument {
    pub store_execute_response: bool,
    pub lineage: bool,
    pub status: bool,
    /// Requested outputs; empty means "all outputs".
    pub outputs: Vec<OutputRequest>,
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
