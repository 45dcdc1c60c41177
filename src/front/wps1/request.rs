//! The parsed form of a WPS 1.0.0 request: both parsers (KVP and XML) produce these types.

use crate::model::{Input, OutputRequest};
use serde::{Deserialize, Serialize};

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
