//! What an OGC API execute request asked that is kept with its job: the response form.

use crate::jobs::JobRecord;
use serde::{Deserialize, Serialize};

/// `response` of the execute request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResponseForm {
    #[default]
    Raw,
    Document,
}

/// What an OGC API execute request asked, kept with its job (under `"ogcapi"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OgcJob {
    pub response: ResponseForm,
}

impl OgcJob {
    /// The options of a job; a job submitted through another protocol gets the document form.
    pub fn of(job: &JobRecord) -> OgcJob {
        job.protocol
            .get("ogcapi")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or(OgcJob {
                response: ResponseForm::Document,
            })
    }
}
