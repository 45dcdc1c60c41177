//! Protocol-neutral error kinds (the OWS exception codes every OGC front maps from) and the
//! error type of the engine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// OGC exception codes (WPS 1.0.0 / OWS 1.1) with the HTTP status each maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
