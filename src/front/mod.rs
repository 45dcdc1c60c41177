//! Protocol fronts: HTTP-level requests in, HTTP-level responses out.

pub mod status;
pub mod wps1;
