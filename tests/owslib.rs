//! OWSLib (the client library behind QGIS plugins and birdy) lists, describes and executes
//! the built-in processes of a real Apache running mod_wps.

mod common;
use common::*;
use std::process::Command;

#[test]
fn owslib_lists_describes_and_executes() {
    // a pool that the service does not use
    let a = Apache::builder("owslib")
        .directives("WPSDaemonProcess pywps threads=2\n")
        .start();
    let script = manifest_dir().join("tests/owslib_client.py");
    // Debian's python3-owslib lives in the system interpreter's dist-packages.
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}/wps", a.port))
        .output()
        .expect("/usr/bin/python3 (Debian python3-owslib) is needed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "OWSLib client failed:\n{text}");
    assert!(text.contains("owslib: ok"), "{text}");
}
