//! The server status page (`SetHandler wps-status`, like mod_status): renders a
//! [`ServerStatus`] (collected by the glue from `exec::stats`) as HTML or, with `?json`, as
//! JSON.

use super::http::HttpResponse;
use crate::exec::stats::ServerStatus;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// The page of a status snapshot.
pub trait Render {
    fn to_json(&self) -> String;
    fn to_html(&self) -> String;
}

impl Render for ServerStatus {
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the status serialises")
    }

    fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>mod_wps status</title>\n<style>body{{font-family:sans-serif}}\
             table{{border-collapse:collapse;margin-bottom:1em}}\
             th,td{{border:1px solid #999;padding:2px 6px;text-align:left}}\
             td.n{{text-align:right}}</style></head><body>\n\
             <h1>mod_wps status</h1>\n<dl>\
             <dt>Version</dt><dd>mod_wps {}</dd>\
             <dt>Current time</dt><dd>{}</dd>\
             <dt>Server (re)started</dt><dd>{}</dd><dt>Server uptime</dt><dd>{}</dd>\
             <dt>Child pid</dt><dd>{}</dd><dt>Child started</dt><dd>{}</dd>\
             <dt>Child uptime</dt><dd>{}</dd></dl>\n",
            esc(&self.version),
            rfc3339(self.now),
            rfc3339(self.server_started),
            duration(self.server_uptime),
            self.pid,
            rfc3339(self.child_started),
            duration(self.child_uptime),
        );
        h.push_str(
            "<h2>Worker pools (this child)</h2>\n<table><tr><th>Process group</th>\
             <th>Threads</th><th>Busy</th><th>Idle</th><th>Queued</th><th>Queue size</th>\
             <th>Completed</th><th>Panicked</th><th>Timed out</th></tr>\n",
        );
        for p in &self.pools {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&p.name),
                p.threads,
                p.busy,
                p.idle,
                p.queued,
                p.queue_capacity,
                p.completed,
                p.panicked,
                p.timed_out
            );
        }
        h.push_str("</table>\n<h2>Services</h2>\n");
        if self.services.is_empty() {
            h.push_str("<p>No WPSScriptAlias is configured.</p>\n");
        }
        h.push_str(
            "<table><tr><th>URL</th><th>Virtual host</th><th>Title</th><th>Config</th>\
             <th>Process group</th><th>Running (server)</th><th>Queued (server)</th>\
             <th>Finished, kept (server)</th><th>Succeeded (child)</th>\
             <th>Failed (child)</th><th>Rejected (child)</th></tr>\n",
        );
        for s in &self.services {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&s.url),
                esc(s.vhost.as_deref().unwrap_or("(main server)")),
                esc(&s.title),
                esc(&s.config),
                esc(&s.process_group),
                s.running.len(),
                s.queued,
                s.finished_kept,
                s.succeeded,
                s.failed,
                s.rejected
            );
        }
        h.push_str("</table>\n");
        let running: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.running.iter().map(move |j| (s, j)))
            .collect();
        if !running.is_empty() {
            h.push_str(
                "<h2>Running jobs (server)</h2>\n<table><tr><th>Service</th><th>Job</th>\
                 <th>Process</th><th>Child pid</th><th>Submitted</th><th>Attempt</th></tr>\n",
            );
            for (s, j) in running {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
                     <td class=\"n\">{}</td></tr>",
                    esc(&s.url),
                    esc(&j.id),
                    esc(&j.process),
                    j.owner,
                    rfc3339(j.submitted),
                    j.attempts
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str(
            "<p>Pools and succeeded/failed/rejected totals are those of the Apache child that \
             answered this request; running, queued and finished jobs are server-wide. \
             <a href=\"?json\">JSON</a></p>\n</body></html>\n",
        );
        h
    }
}

/// Whether the query string asks for JSON (`?json`, also `json=1` or `format=json`).
pub fn wants_json(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| {
        k.eq_ignore_ascii_case("json") || (k.eq_ignore_ascii_case("format") && v == "json")
    })
}

/// The HTTP answer for a status request with `query`.
pub fn response(status: &ServerStatus, query: &str) -> HttpResponse {
    let (content_type, body) = if wants_json(query) {
        ("application/json", status.to_json())
    } else {
        ("text/html; charset=utf-8", status.to_html())
    };
    HttpResponse {
        status: 200,
        content_type: content_type.to_owned(),
        headers: vec![("Cache-Control".to_owned(), "no-store".to_owned())],
        body: body.into_bytes(),
        log: Vec::new(),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

/// `3 days 4 hours 5 minutes 6 seconds`-style uptime, like mod_status.
fn duration(mut secs: u64) -> String {
    let mut parts = Vec::new();
    for (unit, len) in [("day", 86_400), ("hour", 3_600), ("minute", 60)] {
        let n = secs / len;
        secs %= len;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    if secs > 0 || parts.is_empty() {
        parts.push(format!("{secs} second{}", if secs == 1 { "" } else { "s" }));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::stats::{PoolStatus, RunningJob, ServiceStatus};

    fn sample() -> ServerStatus {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        ServerStatus::new(
            t0 + Duration::from_secs(90_061),
            t0,
            t0 + Duration::from_secs(90_000),
            vec![PoolStatus {
                name: "py<wps>".into(),
                threads: 5,
                busy: 2,
                idle: 3,
                queued: 1,
                queue_capacity: 100,
                completed: 7,
                panicked: 1,
                timed_out: 0,
            }],
            vec![ServiceStatus {
                url: "/wps".into(),
                vhost: Some("a&b:8080".into()),
                config: "/etc/wps/wps.cfg".into(),
                title: "Demo <script>alert('x')</script> & \"more\"".into(),
                process_group: "pywps".into(),
                running: vec![RunningJob {
                    id: "2b7b3f4e-0000-4000-8000-000000000001".into(),
                    process: "sleep".into(),
                    owner: 4242,
                    submitted: 1_700_000_100,
                    attempts: 1,
                }],
                queued: 3,
                finished_kept: 9,
                succeeded: 5,
                failed: 2,
                rejected: 1,
            }],
        )
    }

    #[test]
    fn uptimes_and_durations() {
        let s = sample();
        assert_eq!(s.server_uptime, 90_061);
        assert_eq!(s.child_uptime, 61);
        assert_eq!(duration(90_061), "1 day 1 hour 1 minute 1 second");
        assert_eq!(duration(0), "0 seconds");
        assert_eq!(duration(7_200), "2 hours");
    }

    #[test]
    fn html_is_escaped() {
        let h = sample().to_html();
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains(
            "Demo &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"
        ));
        assert!(h.contains("<td>py&lt;wps&gt;</td>"));
        assert!(h.contains("<td>a&amp;b:8080</td>"));
        assert!(h.contains("1 day 1 hour 1 minute 1 second"));
        assert!(h.contains("2b7b3f4e-0000-4000-8000-000000000001"));
        assert!(h.contains("<h2>Running jobs (server)</h2>"));
        // every '&' in the text starts an entity
        for (i, _) in h.match_indices('&') {
            let rest = &h[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & at {}",
                &rest[..rest.len().min(20)]
            );
        }
    }

    #[test]
    fn json_round_trips_the_model() {
        let s = sample();
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["pools"][0]["name"], "py<wps>");
        assert_eq!(v["pools"][0]["busy"], 2);
        assert_eq!(v["pools"][0]["timed_out"], 0);
        assert_eq!(v["services"][0]["running"][0]["process"], "sleep");
        assert_eq!(v["services"][0]["queued"], 3);
        assert_eq!(v["services"][0]["succeeded"], 5);
        assert_eq!(v["server_uptime"], 90_061);
        assert_eq!(v["pid"], std::process::id());
    }

    #[test]
    fn response_format_follows_the_query() {
        let s = sample();
        assert!(wants_json("json"));
        assert!(wants_json("a=1&JSON"));
        assert!(wants_json("format=json"));
        assert!(!wants_json(""));
        assert!(!wants_json("jsonx=1"));
        let r = response(&s, "json");
        assert_eq!(r.content_type, "application/json");
        assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_ok());
        let r = response(&s, "");
        assert!(r.content_type.starts_with("text/html"));
        assert_eq!(r.status, 200);
    }
}
