//! Who can see a job (`[server] jobaccess`): behind Apache's own authentication
//! (`mod_auth_basic` with an htpasswd file: two users and an admin), a job answers only the
//! user who submitted it, and the `jobadmins`; `jobaccess = all` keeps every job readable by id.

mod common;

use base64::Engine;
use common::*;
use std::time::{Duration, Instant};

const USERS: [&str; 3] = ["ann", "bob", "root"];

fn basic(user: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw-{user}"));
    format!("Basic {token}")
}

/// A server with Basic authentication in front of /wps and its status page.
fn start(name: &str, access: &str) -> Apache {
    let dir = scratch(name);
    let htpasswd = dir.join("htpasswd");
    for (i, u) in USERS.iter().enumerate() {
        let mut cmd = std::process::Command::new("htpasswd");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .args(["-b", "-B", "-C", "4"])
            .arg(&htpasswd)
            .args([u.to_string(), format!("pw-{u}")])
            .status()
            .expect("htpasswd (apache2-utils)");
        assert!(ok.success());
    }
    chmod(&htpasswd, 0o644);
    let cfg =
        write_service_config_with(&dir, "wps.cfg", &format!("{access}\njobadmins = root"), "");
    let directives = format!(
        "LoadModule authn_core_module {MODULES}/mod_authn_core.so\n\
         LoadModule authn_file_module {MODULES}/mod_authn_file.so\n\
         LoadModule auth_basic_module {MODULES}/mod_auth_basic.so\n\
         LoadModule authz_user_module {MODULES}/mod_authz_user.so\n\
         WPSScriptAlias /wps {cfg}\n\
         <Location /wps>\n  AuthType Basic\n  AuthName wps\n  AuthUserFile {pw}\n  Require valid-user\n</Location>\n\
         <Location /wps-status>\n  SetHandler wps-status\n  AuthType Basic\n  AuthName wps\n  AuthUserFile {pw}\n  Require valid-user\n</Location>\n",
        cfg = cfg.display(),
        pw = htpasswd.display()
    );
    Apache::start_in(dir, Mpm::Event, &directives)
}

fn get(a: &Apache, user: &str, path: &str) -> Resp {
    a.request("GET", path, None, &[("Authorization", &basic(user))])
}

/// Submits an async say_hello (its output by reference) as `user`; returns the status path
/// and the output path once it succeeded.
fn submit(a: &Apache, user: &str) -> (String, String) {
    let r = get(
        a,
        user,
        &format!(
            "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name={user}&ResponseDocument=response@asReference=true&storeExecuteResponse=true"
        ),
    );
    let t = r.text();
    assert_eq!(r.status, 200, "{t}");
    let loc = t
        .split("statusLocation=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{t}"));
    let status = format!(
        "/{}",
        loc.split_once("://").unwrap().1.split_once('/').unwrap().1
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = get(a, user, &status).text();
        if d.contains("ProcessSucceeded") {
            assert_valid(d.as_bytes());
            let href = d
                .split("<wps:Reference href=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("{d}"));
            let out = format!(
                "/{}",
                href.split_once("://").unwrap().1.split_once('/').unwrap().1
            );
            return (status, out);
        }
        assert!(
            !d.contains("ProcessFailed") && Instant::now() < deadline,
            "{d}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn with_jobaccess_owner_each_user_sees_only_their_jobs() {
    let a = start("access-owner", "jobaccess = owner");
    // no credentials: Apache refuses before mod_wps
    assert_eq!(
        a.get("/wps?service=WPS&request=GetCapabilities").status,
        401
    );
    let (ann_status, ann_out) = submit(&a, "ann");
    let (bob_status, bob_out) = submit(&a, "bob");
    for (path, owner, other) in [
        (&ann_status, "ann", "bob"),
        (&ann_out, "ann", "bob"),
        (&bob_status, "bob", "ann"),
        (&bob_out, "bob", "ann"),
    ] {
        assert_eq!(get(&a, owner, path).status, 200, "{owner} {path}");
        assert_eq!(get(&a, "root", path).status, 200, "root {path}");
        // to anyone else exactly as an unknown job
        let r = get(&a, other, path);
        assert_eq!(r.status, 404, "{other} {path}: {}", r.text());
        let unknown = get(
            &a,
            other,
            &path.replace(&path[13..49], "00000000-0000-4000-8000-000000000000"),
        );
        assert_eq!((r.status, r.text()), (unknown.status, unknown.text()));
    }
    let d = get(&a, "ann", &ann_out).text();
    assert!(d.contains("Hello ann"), "{d}");
    // the status page shows the ids of running jobs to admins only
    let r = get(
        &a,
        "ann",
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=sleep&DataInputs=delay=0.6&storeExecuteResponse=true",
    );
    let t = r.text();
    let id = t
        .split("/outputs/")
        .nth(1)
        .and_then(|s| s.split(".xml").next())
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&a, "root", "/wps-status?json").text().contains(&id) {
        assert!(Instant::now() < deadline, "{}", a.error_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let page = get(&a, "bob", "/wps-status?json").text();
    assert!(!page.contains(&id) && page.contains("(hidden)"), "{page}");
}

#[test]
fn with_jobaccess_all_every_job_is_readable_by_id() {
    let a = start("access-all", "jobaccess = all");
    let (status, out) = submit(&a, "ann");
    for user in USERS {
        assert_eq!(get(&a, user, &status).status, 200, "{user}");
        assert_eq!(get(&a, user, &out).status, 200, "{user}");
    }
}

/// OGC API – Processes under the same `<Location /wps>` authentication: `/jobs` lists a user's
/// own jobs only, another user's job is `no-such-job` (also for results and DELETE), the admin
/// sees and lists all.
#[test]
fn ogcapi_jobs_answer_only_their_owner_and_the_admins() {
    let a = start("access-ogcapi", "jobaccess = owner");
    assert_eq!(
        a.get("/wps/api/jobs").status,
        401,
        "Apache's Require covers the API"
    );
    let submit = |user: &str| -> String {
        let r = a.request(
            "POST",
            "/wps/api/processes/say_hello/execution",
            Some(format!(r#"{{"inputs": {{"name": "{user}"}}}}"#).as_bytes()),
            &[
                ("Authorization", &basic(user)),
                ("Content-Type", "application/json"),
                ("Prefer", "respond-async"),
            ],
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        j["jobID"].as_str().unwrap().to_owned()
    };
    let ann = submit("ann");
    let bob = submit("bob");
    let listed = |user: &str| -> Vec<String> {
        let r = get(&a, user, "/wps/api/jobs");
        assert_eq!(r.status, 200, "{}", r.text());
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        j["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["jobID"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed("ann"), vec![ann.clone()]);
    assert_eq!(listed("bob"), vec![bob.clone()]);
    let all = listed("root");
    assert!(all.contains(&ann) && all.contains(&bob), "{all:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get(&a, "ann", &format!("/wps/api/jobs/{ann}"))
        .text()
        .contains("successful")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in [
        format!("/wps/api/jobs/{ann}"),
        format!("/wps/api/jobs/{ann}/results"),
    ] {
        assert_eq!(get(&a, "ann", &path).status, 200, "{path}");
        assert_eq!(get(&a, "root", &path).status, 200, "{path}");
        let r = get(&a, "bob", &path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains("/no-such-job"), "{}", r.text());
    }
    let r = a.request(
        "DELETE",
        &format!("/wps/api/jobs/{ann}"),
        None,
        &[("Authorization", &basic("bob"))],
    );
    assert_eq!(r.status, 404);
    assert_eq!(get(&a, "ann", &format!("/wps/api/jobs/{ann}")).status, 200);
    let r = a.request(
        "DELETE",
        &format!("/wps/api/jobs/{ann}"),
        None,
        &[("Authorization", &basic("root"))],
    );
    assert_eq!(r.status, 200, "the admin may dismiss it");
}

/// WPS 2.0 GetStatus, GetResult and Dismiss read jobs as the authenticated user: another
/// user's job is `NoSuchJob` (exactly as an unknown one), its owner and the admin see it.
#[test]
fn wps2_job_operations_answer_only_the_owner_and_admins() {
    let a = start("access-wps2", "jobaccess = owner");
    let v2 = "/wps?service=WPS&version=2.0.0";
    let submit2 = |user: &str| -> String {
        let r = get(
            &a,
            user,
            &format!(
                "{v2}&request=Execute&identifier=echo&mode=async&DataInputs=literalInput={user}"
            ),
        );
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert_valid(&r.body);
        t.split("<wps:JobID>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap()
            .to_owned()
    };
    let wait = |user: &str, id: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !get(&a, user, &format!("{v2}&request=GetStatus&JobID={id}"))
            .text()
            .contains("<wps:Status>Succeeded</wps:Status>")
        {
            assert!(Instant::now() < deadline, "{}", a.error_log());
            std::thread::sleep(Duration::from_millis(30));
        }
    };
    let ann = submit2("ann");
    wait("ann", &ann);
    // a job submitted through WPS 1.0.0 is guarded the same way through 2.0
    let (ann1_status, _) = submit(&a, "ann");
    let ann1 = ann1_status[13..49].to_owned();
    for id in [&ann, &ann1] {
        for op in ["GetStatus", "GetResult"] {
            let path = format!("{v2}&request={op}&JobID={id}");
            let other = get(&a, "bob", &path);
            other.assert_exception(404, "NoSuchJob", Some("JobID"));
            let unknown = get(
                &a,
                "bob",
                &path.replace(id.as_str(), "00000000-0000-4000-8000-000000000000"),
            );
            assert_eq!(
                other.text().replace(id.as_str(), "X"),
                unknown
                    .text()
                    .replace("00000000-0000-4000-8000-000000000000", "X")
            );
            for user in ["ann", "root"] {
                let r = get(&a, user, &path);
                assert_eq!(r.status, 200, "{user} {op}: {}", r.text());
                assert_valid(&r.body);
            }
        }
        let r = get(&a, "ann", &format!("{v2}&request=GetResult&JobID={id}")).text();
        assert!(r.contains("<wps:Output id="), "{r}");
        get(&a, "bob", &format!("{v2}&request=Dismiss&JobID={id}")).assert_exception(
            404,
            "NoSuchJob",
            Some("JobID"),
        );
    }
    // the owner dismisses one, the admin the other
    for (user, id) in [("ann", &ann), ("root", &ann1)] {
        let r = get(&a, user, &format!("{v2}&request=Dismiss&JobID={id}"));
        assert!(
            r.text().contains("<wps:Status>Dismissed</wps:Status>"),
            "{}",
            r.text()
        );
        get(&a, "ann", &format!("{v2}&request=GetStatus&JobID={id}")).assert_exception(
            404,
            "NoSuchJob",
            Some("JobID"),
        );
    }
}
