//! `apache2 -t` with mod_wps directives: every configuration mistake is a syntax error that
//! names the httpd.conf line (and, for service config files, the file and its line).

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// Writes a service config file (outside the configtest's own scratch directory).
fn cfg_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    write_file(dir, name, body, 0o644)
}

/// Mounts a service config file `name` with this `body` at /wps and asserts the configtest
/// fails on the `WPSScriptAlias` line, naming `name:line` and every one of `expect`.
fn assert_cfg_rejected(name: &str, body: &str, line: usize, expect: &[&str]) {
    let dir = scratch("ct-cfg");
    let cfg = cfg_file(&dir, name, body);
    let at = format!("{}:{line}:", cfg.display());
    let expect: Vec<&str> = [at.as_str()]
        .into_iter()
        .chain(expect.iter().copied())
        .collect();
    assert_rejected(
        &format!("WPSScriptAlias /wps {}\n", cfg.display()),
        "WPSScriptAlias",
        &expect,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The httpd.conf line number at which the first line containing `needle` lands.
fn conf_line(directives: &str, needle: &str) -> usize {
    let conf = httpd_conf(Path::new("/x"), 1, Mpm::Event, directives);
    conf.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the config"))
        + 1
}

/// Runs `apache2 -t`, asserts it fails with "Syntax error on line N of .../httpd.conf:" where
/// line N holds `needle`, and that the output contains every one of `expect`.
fn assert_rejected(directives: &str, needle: &str, expect: &[&str]) -> String {
    let (ok, out) = configtest(directives);
    assert!(!ok, "configtest passed:\n{directives}\n{out}");
    let line = conf_line(directives, needle);
    assert!(
        out.contains(&format!("Syntax error on line {line} of ")) && out.contains("httpd.conf:"),
        "expected a syntax error on line {line} of httpd.conf:\n{out}"
    );
    for e in expect {
        assert!(out.contains(e), "expected {e:?} in:\n{out}");
    }
    assert!(!out.contains("Syntax OK"), "{out}");
    out
}

fn good_cfg(dir: &Path) -> PathBuf {
    write_service_config(dir, "wps.cfg", "")
}

#[test]
fn unknown_daemon_process_option() {
    assert_rejected(
        "WPSDaemonProcess p thread=2\n",
        "WPSDaemonProcess p",
        &["WPSDaemonProcess:", "unknown option 'thread=2'", "threads"],
    );
}

#[test]
fn non_numeric_thread_count() {
    assert_rejected(
        "WPSDaemonProcess p threads=zero\n",
        "WPSDaemonProcess p",
        &["WPSDaemonProcess:", "threads=zero", "whole number"],
    );
    assert_rejected(
        "WPSDaemonProcess p threads=0\n",
        "WPSDaemonProcess p",
        &["threads=0", "whole number"],
    );
    assert_rejected(
        "WPSDaemonProcess p request-timeout\n",
        "WPSDaemonProcess p",
        &["request-timeout", "KEY=VALUE"],
    );
}

#[test]
fn undefined_process_group_in_alias() {
    let dir = scratch("ct-undef");
    let cfg = good_cfg(&dir);
    let d = format!("WPSScriptAlias /wps {} process-group=nope\n", cfg.display());
    assert_rejected(
        &d,
        "WPSScriptAlias",
        &["WPSScriptAlias:", "'nope'", "not defined"],
    );
    // declared after use is still undefined at the point of use
    let d = format!(
        "WPSScriptAlias /wps {} process-group=late\nWPSDaemonProcess late\n",
        cfg.display()
    );
    assert_rejected(&d, "WPSScriptAlias", &["'late'", "not defined"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_service_config_file() {
    assert_rejected(
        "WPSScriptAlias /wps /nonexistent/wps.cfg\n",
        "WPSScriptAlias",
        &[
            "/nonexistent/wps.cfg",
            "cannot read",
            "No such file or directory",
        ],
    );
}

#[test]
fn service_config_syntax_error_names_file_and_line() {
    assert_cfg_rejected(
        "broken.cfg",
        "[server]\nurl = http://localhost/wps\nthis is not ini\n",
        3,
        &["this is not ini"],
    );
}

#[test]
fn service_config_bad_value_names_file_and_line() {
    assert_cfg_rejected(
        "bad.cfg",
        "[metadata:main]\nidentification_title = T\n\n[server]\nmaxrequestsize = lots\n",
        5,
        &["lots"],
    );
}

#[test]
fn unknown_builtin_process() {
    assert_cfg_rejected(
        "wps.cfg",
        "[processes]\nbuiltin = say_hello, no_such_process\n",
        2,
        &["unknown process 'no_such_process'", "say_hello"],
    );
}

#[test]
fn undefined_process_group_in_location() {
    let dir = scratch("ct-location");
    let cfg = good_cfg(&dir);
    let d = format!(
        "WPSScriptAlias /wps {}\n<Location /wps>\n  WPSProcessGroup nope\n</Location>\n",
        cfg.display()
    );
    assert_rejected(
        &d,
        "WPSProcessGroup",
        &["WPSProcessGroup:", "'nope'", "not defined"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn alias_url_must_start_with_slash() {
    let dir = scratch("ct-slash");
    let cfg = good_cfg(&dir);
    assert_rejected(
        &format!("WPSScriptAlias wps {}\n", cfg.display()),
        "WPSScriptAlias",
        &["WPSScriptAlias:", "'wps'", "must start with '/'"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn duplicate_daemon_process() {
    let d = "WPSDaemonProcess p threads=1\nWPSDaemonProcess p threads=2\n";
    let out = assert_rejected(
        d,
        "WPSDaemonProcess p threads=2",
        &["'p'", "already defined"],
    );
    assert!(!out.contains(&format!(
        "line {} ",
        conf_line(d, "WPSDaemonProcess p threads=1")
    )));
}

#[test]
fn duplicate_alias_and_bad_arguments() {
    let dir = scratch("ct-dup-alias");
    let cfg = good_cfg(&dir);
    let d = format!(
        "WPSScriptAlias /wps {c}\nWPSScriptAlias /wps/ {c}\n",
        c = cfg.display()
    );
    assert_rejected(&d, "WPSScriptAlias /wps/", &["'/wps'", "already mounted"]);
    assert_rejected(
        &format!("WPSScriptAlias /wps {} group=x\n", cfg.display()),
        "WPSScriptAlias",
        &["unknown option 'group=x'"],
    );
    assert_rejected(
        "WPSScriptAlias /wps\n",
        "WPSScriptAlias",
        &["URL-PATH CONFIG-FILE"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn valid_config_passes() {
    let dir = scratch("ct-ok");
    let cfg = good_cfg(&dir);
    let d = format!(
        "WPSDaemonProcess pywps threads=4 queue=10 request-timeout=30 graceful-timeout=5\n\
         WPSDaemonProcess other\n\
         WPSScriptAlias /wps {c} process-group=pywps\n\
         WPSScriptAlias /wps2 {c}\n\
         <Location /wps2>\n  WPSProcessGroup other\n</Location>\n",
        c = cfg.display()
    );
    let (ok, out) = configtest(&d);
    assert!(ok && out.contains("Syntax OK"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stock PyWPS configuration (pywps/pywps.cfg of a deployment) is accepted as is.
const PYWPS_CFG: &str = include_str!("data/pywps.cfg");

#[test]
fn pywps_deployment_config_passes() {
    let dir = scratch("ct-pywps");
    let cfg = cfg_file(&dir, "pywps.cfg", PYWPS_CFG);
    let (ok, out) = configtest(&format!(
        "WPSDaemonProcess pywps threads=2\nWPSScriptAlias /wps {} process-group=pywps\n",
        cfg.display()
    ));
    assert!(ok && out.contains("Syntax OK"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
