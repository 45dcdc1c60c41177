//! Reading KVP (HTTP GET) requests, alike in both versions: parameter names are
//! case-insensitive and the first occurrence of a repeated one wins.

use crate::model::{ExceptionCode, WpsError, WpsResult};
use std::collections::HashMap;

/// The parameters of a raw (still percent-encoded) URL query string.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: &str) -> Params {
        let mut params: HashMap<String, String> = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            params
                .entry(k.trim().to_ascii_lowercase())
                .or_insert_with(|| v.into_owned());
        }
        Params(params)
    }

    /// A parameter by its lower-case name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Checks `service=WPS` and returns the (trimmed, non-empty) `request`.
    pub fn request(&self) -> WpsResult<&str> {
        match self.get("service").map(str::trim).filter(|s| !s.is_empty()) {
            None => {
                return Err(WpsError::missing(
                    "service",
                    "parameter 'service' is missing",
                ))
            }
            Some(s) if !s.eq_ignore_ascii_case("WPS") => {
                return Err(WpsError::invalid(
                    "service",
                    format!("service '{s}' is not 'WPS'"),
                ))
            }
            Some(_) => {}
        }
        self.get("request")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| WpsError::missing("request", "parameter 'request' is missing"))
    }
}

/// Comma-separated list: items trimmed, empty items dropped.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The identifiers of DescribeProcess (`identifier`, a comma-separated list): at least one.
pub fn identifiers(identifier: &str) -> WpsResult<Vec<String>> {
    let identifiers = split_list(identifier);
    if identifiers.is_empty() {
        return Err(missing_identifier());
    }
    Ok(identifiers)
}

/// The process identifier of Execute is missing.
pub fn missing_identifier() -> WpsError {
    WpsError::missing("identifier", "parameter 'identifier' is missing")
}

/// Checks the mandatory `version` of the operations but GetCapabilities: `supported` (the
/// version of the front that reads it).
pub fn check_version(version: Option<&str>, supported: &str) -> WpsResult<()> {
    match version.map(str::trim) {
        None | Some("") => Err(WpsError::missing(
            "version",
            "parameter 'version' is missing",
        )),
        Some(v) if v == supported => Ok(()),
        Some(v) => Err(WpsError::invalid(
            "version",
            format!("version '{v}' is not supported; supported: 1.0.0, 2.0.0"),
        )),
    }
}

/// GetCapabilities whose `AcceptVersions` lacks the version asked: `VersionNegotiationFailed`
/// without a locator (OWS 1.1 Table 25, OWS 2.0).
pub fn version_negotiation_failed(versions: &[String]) -> WpsError {
    WpsError::new(
        ExceptionCode::VersionNegotiationFailed,
        None,
        format!("none of the versions {versions:?} is supported; supported: 1.0.0, 2.0.0"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_checks() {
        let p = Params::parse("SERVICE=wps&Request=%20Execute&request=x&version=2.0.0");
        assert_eq!(p.request().unwrap(), "Execute");
        assert_eq!(p.get("version"), Some("2.0.0"));
        let e = Params::parse("request=x").request().unwrap_err();
        assert_eq!(e.code, ExceptionCode::MissingParameterValue);
        let e = Params::parse("service=WMS&request=x")
            .request()
            .unwrap_err();
        assert_eq!(e.locator.as_deref(), Some("service"));
        let e = Params::parse("service=WPS&request=").request().unwrap_err();
        assert_eq!(e.locator.as_deref(), Some("request"));
        assert_eq!(split_list(" a, ,b,"), ["a", "b"]);
        assert!(identifiers(" , ").is_err());
        assert!(check_version(Some(" 1.0.0 "), "1.0.0").is_ok());
        assert!(check_version(Some("1.0.0"), "2.0.0").is_err());
        assert_eq!(
            check_version(None, "2.0.0").unwrap_err().code,
            ExceptionCode::MissingParameterValue
        );
    }
}
