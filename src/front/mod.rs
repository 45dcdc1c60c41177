//! Protocol fronts: an HTTP-level request in, an HTTP-level response out. Each front parses
//! its protocol into calls of the engine's jobs API and renders what comes back (a job's
//! record is rendered when it is read).

pub mod body_buffers;
pub mod http;
pub mod ogcapi;
pub mod outputs;
pub mod router;
pub mod status_page;
pub mod wps1;
pub mod wps2;
pub mod wps_common;
pub mod xml;
pub mod xml_read;

pub use http::{Body, HttpRequest, HttpResponse};
