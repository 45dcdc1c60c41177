//! The jobs API every protocol front uses: check a request, run it synchronously, submit it as
//! a job, read a job's record and output files, list and dismiss jobs. Fronts translate their
//! protocol into these calls and render what comes back; executors (below `exec/`) plug in
//! through [`Backend`].

use super::service::Service;
use crate::config::service::JobAccess;
use crate::jobs::{new_id, JobOutput, JobQuery, JobRecord, Owner, StoreError, StoredValue};
use crate::model::format::{bounding_box_xml, encode_base64, extension_for, is_base64, select};
use crate::model::{
    DataSpec, ExceptionCode, Input, Inputs, OutputRequest, OutputValue, Outputs, Process,
    ProcessDescription, WpsError, WpsResult,
};
use std::sync::Arc;

/// What runs work for the engine (the local worker pools of this Apache child).
pub trait Backend: Send + Sync {
    /// Runs `process` now, within a `parallelprocesses` slot and the pool's limits, and waits
    /// for its outputs.
    fn run_sync(&self, process: Arc<dyn Process>, inputs: Inputs) -> WpsResult<Outputs>;
    /// Tells the dispatcher a job was queued.
    fn wake(&self);
}

/// What ended a job's work.
#[derive(Debug)]
pub enum Outcome {
    Done(Outputs),
    Failed(WpsError),
    /// The work panicked (the message is for the error log, not for clients).
    Crashed {
        process: String,
        message: String,
    },
}

impl Outcome {
    /// The error a client sees for a failed or crashed job.
    pub fn client_error(&self) -> Option<WpsError> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Failed(e) => Some(e.clone()),
            Outcome::Crashed { process, .. } => Some(WpsError::no_applicable(format!(
                "Process '{process}' crashed with an internal error; the details are in the server's error log"
            ))),
        }
    }
}

/// Who asks: the authenticated user of the request (`REMOTE_USER`), if any. With
/// `jobaccess = owner`, a job answers only its owner and `jobadmins`; to anyone else it is
/// unknown (no hint that it exists). Anonymous jobs stay readable by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caller<'a> {
    pub user: Option<&'a str>,
}

impl<'a> Caller<'a> {
    pub fn new(user: Option<&'a str>) -> Self {
        Caller { user }
    }
    /// The caller of the server's own work (no restriction).
    pub fn anonymous() -> Self {
        Caller { user: None }
    }
}

/// An asynchronous job as a front submits it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub process: String,
    pub inputs: Vec<Input>,
    /// The outputs asked for (empty: all).
    pub outputs: Vec<OutputRequest>,
    /// The authenticated user (`REMOTE_USER`).
    pub user: Option<String>,
    /// The front's own options, kept with the job for rendering it later.
    pub protocol: serde_json::Value,
}

/// The outputs a request asks for (all when it names none).
pub fn requested_outputs(
    specs: &[crate::model::OutputSpec],
    asked: &[OutputRequest],
) -> Vec<OutputRequest> {
    if asked.is_empty() {
        specs
            .iter()
            .map(|o| OutputRequest {
                identifier: o.identifier.clone(),
                ..Default::default()
            })
            .collect()
    } else {
        asked.to_vec()
    }
}

/// The value a process produced for a requested output (in the requested format).
pub fn produced<'a>(outputs: &'a Outputs, r: &OutputRequest) -> WpsResult<&'a OutputValue> {
    outputs
        .get_format(&r.identifier, r.mime_type.as_deref())
        .ok_or_else(|| {
            WpsError::no_applicable(format!("the process produced no output '{}'", r.identifier))
        })
}

/// Checks the outputs a request asks for: they exist and their formats are supported.
pub fn check_outputs(desc: &ProcessDescription, requested: &[OutputRequest]) -> WpsResult<()> {
    for o in requested {
        let spec = desc.output(&o.identifier).ok_or_else(|| {
            WpsError::new(
                ExceptionCode::NoSuchOutput,
                Some(&o.identifier),
                format!(
                    "Process '{}' has no output '{}'",
                    desc.identifier, o.identifier
                ),
            )
        })?;
        if let DataSpec::Complex { formats, .. } = &spec.data {
            select(
                formats,
                o.mime_type.as_deref(),
                o.encoding.as_deref(),
                o.schema.as_deref(),
            )
            .map_err(|m| {
                WpsError::new(
                    ExceptionCode::NoSuchFormat,
                    Some("mimeType"),
                    format!("Output '{}': {m}", o.identifier),
                )
            })?;
        }
    }
    Ok(())
}

/// The error a client sees when the job store fails: `ServerBusy` (503 + `Retry-After`) when it
/// is full or cannot be reached now, `NoApplicableCode` otherwise.
pub fn store_error(e: StoreError) -> WpsError {
    match e {
        StoreError::Full(n) => WpsError::new(
            ExceptionCode::ServerBusy,
            None,
            format!("{n} jobs are already waiting (maxprocesses); retry later"),
        ),
        StoreError::Unavailable(m) => WpsError::no_applicable(format!("job store error: {m}")),
        StoreError::Down(m) => WpsError::new(
            ExceptionCode::ServerBusy,
            None,
            format!("The job store is not reachable now ({m}); retry later"),
        ),
    }
}

impl Service {
    /// The process with this identifier.
    pub fn lookup(&self, id: &str) -> WpsResult<Arc<dyn Process>> {
        self.process(id).cloned().ok_or_else(|| {
            WpsError::new(
                ExceptionCode::NoSuchProcess,
                Some("identifier"),
                format!("Unknown process '{id}'"),
            )
        })
    }

    /// Checks a request without running it or fetching anything: inputs (references by
    /// address policy only) and requested outputs. Returns the checked inputs.
    pub fn check_request(
        &self,
        process: &dyn Process,
        inputs: &[Input],
        outputs: &[OutputRequest],
    ) -> WpsResult<Inputs> {
        let desc = process.description();
        let checked = self.precheck_inputs(desc, inputs)?;
        check_outputs(desc, &requested_outputs(&desc.outputs, outputs))?;
        Ok(checked)
    }

    /// Runs a checked request synchronously: references are fetched here, on the request
    /// thread, before a slot and a worker are taken.
    pub fn run_sync(
        &self,
        backend: &dyn Backend,
        process: Arc<dyn Process>,
        inputs: &[Input],
        checked: Inputs,
    ) -> WpsResult<Outputs> {
        let ready = self.prepare_inputs(process.description(), inputs, Some(checked))?;
        backend.run_sync(process, ready)
    }

    /// Accepts a job: its record is in the store (and the queue) before this returns.
    pub fn submit(&self, backend: &dyn Backend, s: Submission) -> WpsResult<JobRecord> {
        let process = self.lookup(&s.process)?;
        self.check_request(process.as_ref(), &s.inputs, &s.outputs)?;
        let mut job = JobRecord::new(new_id(), &s.process, s.inputs, s.outputs, s.protocol);
        job.user = s.user;
        self.store.enqueue(&job).map_err(store_error)?;
        backend.wake();
        Ok(job)
    }

    /// Whether `caller` sees and dismisses every job of this service.
    pub fn is_job_admin(&self, caller: Caller) -> bool {
        let server = &self.config.server;
        server.jobaccess == JobAccess::All
            || caller
                .user
                .is_some_and(|u| server.jobadmins.iter().any(|a| a == u))
    }

    fn may_see(&self, job: &JobRecord, caller: Caller) -> bool {
        job.user.is_none() || self.is_job_admin(caller) || job.user.as_deref() == caller.user
    }

    /// A job's record as `caller` may see it (`None`: unknown, expired, dismissed, or not
    /// the caller's).
    pub fn job(&self, id: &str, caller: Caller) -> WpsResult<Option<JobRecord>> {
        let job = self.store.get(id).map_err(store_error)?;
        Ok(job.filter(|j| self.may_see(j, caller)))
    }

    /// A job's output file, for `caller`.
    pub fn output_file(&self, id: &str, name: &str, caller: Caller) -> WpsResult<Option<Vec<u8>>> {
        if self.config.server.jobaccess == JobAccess::Owner && self.job(id, caller)?.is_none() {
            // outputs of synchronous requests have no record: readable by their URL
            if self.store.get(id).map_err(store_error)?.is_some() {
                return Ok(None);
            }
        }
        self.store.read_output(id, name).map_err(store_error)
    }

    /// The jobs `caller` may list (with `jobaccess = owner`, only their own).
    pub fn list_jobs(&self, q: &JobQuery, caller: Caller) -> WpsResult<Vec<JobRecord>> {
        let mut q = q.clone();
        if !self.is_job_admin(caller) {
            q.owner = match caller.user {
                Some(u) => Owner::User(u.to_owned()),
                None => Owner::Anonymous,
            };
        }
        self.store.list(&q).map_err(store_error)
    }

    /// Dismisses a job (see [`crate::jobs::JobStore::dismiss`]); `None` for a job unknown to
    /// `caller`.
    pub fn dismiss(&self, id: &str, caller: Caller) -> WpsResult<Option<JobRecord>> {
        if self.job(id, caller)?.is_none() {
            return Ok(None);
        }
        self.store.dismiss(id).map_err(store_error)
    }

    /// Stores a job's outputs as it will be read: complex values and everything asked for by
    /// reference as files of job `id`, literals and bounding boxes inline.
    pub fn store_results(
        &self,
        id: &str,
        desc: &ProcessDescription,
        asked: &[OutputRequest],
        outputs: &Outputs,
    ) -> WpsResult<Vec<JobOutput>> {
        let mut v = Vec::new();
        for r in requested_outputs(&desc.outputs, asked) {
            // "all outputs": those the process produced (e.g. `echo` answers only what it got)
            if asked.is_empty() && outputs.get(&r.identifier).is_none() {
                continue;
            }
            let value = produced(outputs, &r)?;
            let write = |ext: &str, data: &[u8]| -> WpsResult<String> {
                let name = format!("{}.{ext}", r.identifier);
                self.store.write_output(id, &name, data).map_err(|e| {
                    WpsError::no_applicable(format!("cannot store output '{}': {e}", r.identifier))
                })?;
                Ok(name)
            };
            let (stored, reference) = match value {
                OutputValue::Literal(s) => {
                    let file = r
                        .as_reference
                        .then(|| write("txt", s.as_bytes()))
                        .transpose()?;
                    (StoredValue::Literal(s.clone()), file)
                }
                OutputValue::BoundingBox(b) => {
                    let file = r
                        .as_reference
                        .then(|| write("xml", bounding_box_xml(b).as_bytes()))
                        .transpose()?;
                    (StoredValue::BoundingBox(b.clone()), file)
                }
                OutputValue::Complex { mime_type, data } => {
                    // a reference asked base64 points at base64 text
                    let file = if r.as_reference && is_base64(r.encoding.as_deref()) {
                        write(extension_for(mime_type), encode_base64(data).as_bytes())?
                    } else {
                        write(extension_for(mime_type), data)?
                    };
                    let reference = r.as_reference.then(|| file.clone());
                    (
                        StoredValue::Complex {
                            mime_type: mime_type.clone(),
                            file,
                        },
                        reference,
                    )
                }
            };
            v.push(JobOutput {
                identifier: r.identifier.clone(),
                value: stored,
                reference,
            });
        }
        Ok(v)
    }

    /// A stored output as a value again (complex data read from its file).
    pub fn load_output(&self, job: &str, o: &JobOutput) -> WpsResult<OutputValue> {
        Ok(match &o.value {
            StoredValue::Literal(s) => OutputValue::Literal(s.clone()),
            StoredValue::BoundingBox(b) => OutputValue::BoundingBox(b.clone()),
            StoredValue::Complex { mime_type, file } => OutputValue::Complex {
                mime_type: mime_type.clone(),
                data: self
                    .store
                    .read_output(job, file)
                    .map_err(store_error)?
                    .ok_or_else(|| {
                        WpsError::no_applicable(format!(
                            "the stored output '{}' of job {job} is gone",
                            o.identifier
                        ))
                    })?,
            },
        })
    }
}
