//! Protocol-neutral error kinds (the OWS exception codes every OGC front maps from) and the
//! error type of the engine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as the engine says it: the OWS exception codes, and the finer kinds WPS 2.0
/// and OGC API – Processes name (which WPS 1.0.0 reports as `InvalidParameterValue`, see
/// [`ExceptionCode::wps1`]). Each front maps a kind to its own code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExceptionCode {
    /// No process by that identifier.
    NoSuchProcess,
    /// The process has no input by that identifier.
    NoSuchInput,
    /// The process has no output by that identifier.
    NoSuchOutput,
    /// No supported format matches the requested one.
    NoSuchFormat,
    /// A referenced input could not be fetched (refused or failed).
    DataNotAccessible,
    /// An input occurs more often than its `maxOccurs` (or the request has too many inputs).
    TooManyInputs,
    /// An input value does not fit its description (type, allowed values, CRS, dimensions).
    WrongInputData,
    /// More outputs asked for than can be delivered (an output twice, several raw outputs).
    TooManyOutputs,
    /// The process does not support the execution mode asked for.
    NoSuchMode,
    /// The job's process failed (WPS 2.0 GetResult of a failed job).
    FailedExecution,
    /// No job by that id (or not the caller's).
    NoSuchJob,
    /// The job has not finished.
    ResultNotReady,
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
            Self::NoSuchProcess => "NoSuchProcess",
            Self::NoSuchInput => "NoSuchInput",
            Self::NoSuchOutput => "NoSuchOutput",
            Self::NoSuchFormat => "NoSuchFormat",
            Self::DataNotAccessible => "DataNotAccessible",
            Self::TooManyInputs => "TooManyInputs",
            Self::WrongInputData => "WrongInputData",
            Self::TooManyOutputs => "TooManyOutputs",
            Self::NoSuchMode => "NoSuchMode",
            Self::FailedExecution => "FailedExecution",
            Self::NoSuchJob => "NoSuchJob",
            Self::ResultNotReady => "ResultNotReady",
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

    /// The code of WPS 1.0.0 / OWS 1.1, which has no finer kinds.
    pub fn wps1(self) -> ExceptionCode {
        match self {
            Self::NoSuchProcess
            | Self::NoSuchInput
            | Self::NoSuchOutput
            | Self::NoSuchFormat
            | Self::DataNotAccessible
            | Self::TooManyInputs
            | Self::WrongInputData
            | Self::TooManyOutputs
            | Self::NoSuchMode
            | Self::NoSuchJob => Self::InvalidParameterValue,
            Self::ResultNotReady | Self::FailedExecution => Self::NoApplicableCode,
            c => c,
        }
    }

    /// The HTTP status of the kind (404 for an unknown process or job).
    pub fn http_status(self) -> u16 {
        match self {
            Self::NoSuchProcess | Self::NoSuchJob => 404,
            Self::NoSuchInput
            | Self::NoSuchOutput
            | Self::NoSuchFormat
            | Self::DataNotAccessible
            | Self::TooManyInputs
            | Self::WrongInputData
            | Self::TooManyOutputs
            | Self::NoSuchMode
            | Self::ResultNotReady => 400,
            Self::MissingParameterValue
            | Self::InvalidParameterValue
            | Self::VersionNegotiationFailed
            | Self::StorageNotSupported => 400,
            Self::OperationNotSupported | Self::OptionNotSupported => 501,
            Self::NoApplicableCode | Self::FailedExecution => 500,
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
    /// The same error as WPS 1.0.0 reports it (finer kinds become its OWS codes).
    pub fn wps1(&self) -> Self {
        WpsError {
            code: self.code.wps1(),
            ..self.clone()
        }
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
