//! The WPS protocol: request parsing (KVP and XML) and response writing.

pub mod complex;
pub mod fetch;
pub mod kvp;
pub mod model;
pub mod response;
pub mod xml;
pub mod xml_request;
