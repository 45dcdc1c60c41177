//! A job as data: what was asked, where it stands, and what it produced. Every protocol front
//! renders a [`JobRecord`] when it is read (WPS 1.0.0 status document, WPS 2.0 StatusInfo, OGC
//! API statusInfo), so one job id is visible through all of them.

use crate::model::{BoundingBox, Input, OutputRequest, WpsError};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Queued, waiting for a slot and a worker.
    Accepted,
    Running,
    Succeeded,
    Failed,
    /// Cancelled by a client; gone for every job operation.
    Dismissed,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Dismissed
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Accepted => "accepted",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dismissed => "dismissed",
        }
    }
}

/// A stored output value: small values inline, complex data as a file of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoredValue {
    Literal(String),
    BoundingBox(BoundingBox),
    /// Bytes in the job's output file `file`.
    Complex {
        mime_type: String,
        file: String,
    },
}

/// One output a job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutput {
    pub identifier: String,
    pub value: StoredValue,
    /// The file to link to when the output was asked for by reference.
    pub reference: Option<String>,
}

/// A job, as every store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// UUID.
    pub id: String,
    /// Queue order: submit time in nanoseconds and the id; kept when a job is re-queued.
    pub key: String,
    pub process: String,
    /// The inputs as requested (references are fetched when the job runs).
    pub inputs: Vec<Input>,
    /// The outputs asked for (empty: all of them).
    pub outputs: Vec<OutputRequest>,
    pub state: JobState,
    /// 0–100.
    pub progress: u32,
    pub message: String,
    /// Why it failed.
    pub error: Option<WpsError>,
    /// Unix times (seconds).
    pub submitted: u64,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub updated: u64,
    /// How often the job was started (1 on its first run).
    pub attempt: u32,
    /// Who runs it now (`host:pid`), while running.
    pub owner: Option<String>,
    /// Until when the owner's claim holds unless renewed (unix seconds).
    pub lease_until: Option<u64>,
    /// The authenticated user who submitted it (`REMOTE_USER`), if any.
    pub user: Option<String>,
    pub results: Vec<JobOutput>,
    /// The requesting protocol's own options (language, URLs, response form), opaque here.
    pub protocol: serde_json::Value,
}

/// The unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A new, unique job id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A job id is a UUID in its canonical lower-case form.
pub fn valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string() == id)
        .unwrap_or(false)
}

impl JobRecord {
    /// A job as submitted: accepted, queued after every job submitted before it.
    pub fn new(
        id: String,
        process: &str,
        inputs: Vec<Input>,
        outputs: Vec<OutputRequest>,
        protocol: serde_json::Value,
    ) -> JobRecord {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let now = unix_now();
        JobRecord {
            key: format!("{nanos:024}-{id}"),
            id,
            process: process.to_owned(),
            inputs,
            outputs,
            state: JobState::Accepted,
            progress: 0,
            message: "Process accepted and queued".into(),
            error: None,
            submitted: now,
            started: None,
            finished: None,
            updated: now,
            attempt: 0,
            owner: None,
            lease_until: None,
            user: None,
            results: Vec::new(),
            protocol,
        }
    }

    pub fn output(&self, id: &str) -> Option<&JobOutput> {
        self.results.iter().find(|o| o.identifier == id)
    }
}

/// How a claimed job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Succeeded {
        message: String,
        results: Vec<JobOutput>,
    },
    Failed(WpsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_ids_are_canonical() {
        let id = new_id();
        assert!(valid_id(&id));
        let mut r = JobRecord::new(
            id.clone(),
            "sleep",
            vec![],
            vec![],
            serde_json::json!({"lang": "en-US"}),
        );
        assert!(r.key.ends_with(&id));
        r.results.push(JobOutput {
            identifier: "o".into(),
            value: StoredValue::Complex {
                mime_type: "application/json".into(),
                file: "o.json".into(),
            },
            reference: Some("o.json".into()),
        });
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"state\":\"accepted\""), "{text}");
        assert_eq!(serde_json::from_str::<JobRecord>(&text).unwrap(), r);
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id("0B6A4F7E-1C2D-4E5F-8A9B-0C1D2E3F4A5B"));
        assert!(!valid_id("0b6a4f7e1c2d4e5f8a9b0c1d2e3f4a5b"));
        assert!(valid_id("0b6a4f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert!(JobState::Dismissed.is_final() && !JobState::Running.is_final());
    }
}
