//! Routes a request below a service's alias to the front that answers it.

use super::http::{HttpRequest, HttpResponse};
use super::{ogcapi, outputs, wps1};
use crate::engine::{Backend, Service};

/// Answers one request for `service`; `backend` runs its work in this child.
pub fn handle(service: &Service, backend: &dyn Backend, req: &HttpRequest) -> HttpResponse {
    let path = req.path.trim_start_matches('/');
    if path.is_empty() {
        return wps1::handle(service, backend, req);
    }
    if let Some(rel) = ogcapi::below_api(service, path) {
        return ogcapi::handle(service, backend, req, rel);
    }
    match path.strip_prefix("outputs/") {
        Some(rel) => outputs::serve(service, backend, req, rel),
        None => HttpResponse::not_found(),
    }
}
