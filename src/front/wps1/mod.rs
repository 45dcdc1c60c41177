//! WPS 1.0.0: request parsing (KVP and XML) and response writing.

pub mod kvp;
pub mod request;
pub mod response;
pub mod xml;
pub mod xml_request;
