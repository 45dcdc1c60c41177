//! The parsed form of a WPS 2.0.0 request: both parsers (KVP and XML) produce these types.

use crate::model::{Input, OutputRequest};

/// The operations of WPS 2.0.0, as they are named.
pub const OPERATIONS: [&str; 6] = [
    "GetCapabilities",
    "DescribeProcess",
    "Execute",
    "GetStatus",
    "GetResult",
    "Dismiss",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    GetCapabilities {
        language: Option<String>,
    },
    DescribeProcess {
        /// One or more identifiers; `ALL` is kept as written.
        identifiers: Vec<String>,
        language: Option<String>,
    },
    Execute(Execute),
    GetStatus {
        job_id: String,
    },
    GetResult {
        job_id: String,
    },
    Dismiss {
        job_id: String,
    },
}

impl Request {
    pub fn language(&self) -> Option<&str> {
        match self {
            Request::GetCapabilities { language } | Request::DescribeProcess { language, .. } => {
                language.as_deref()
            }
            Request::Execute(e) => e.language.as_deref(),
            _ => None,
        }
    }
}

/// `mode` of an Execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sync,
    Async,
    /// The server chooses: mod_wps runs it synchronously.
    Auto,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "sync" => Some(Mode::Sync),
            "async" => Some(Mode::Async),
            "auto" => Some(Mode::Auto),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Execute {
    pub identifier: String,
    pub inputs: Vec<Input>,
    /// The outputs asked for (`transmission="reference"` is `as_reference`); empty: all.
    pub outputs: Vec<OutputRequest>,
    pub mode: Mode,
    /// `response="raw"` (else `document`).
    pub raw: bool,
    pub language: Option<String>,
}

/// A job id as sent: UUIDs are accepted in any case (ids are lower-case UUIDs).
pub fn job_id(s: &str) -> String {
    let t = s.trim();
    match uuid::Uuid::parse_str(t) {
        Ok(u) => u.hyphenated().to_string(),
        Err(_) => t.to_owned(),
    }
}
