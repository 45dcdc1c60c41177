//! OWSLib (the client library behind QGIS plugins and birdy) lists, describes and executes
//! the built-in processes of a real Apache running mod_wps.

mod common;
use common::*;
use std::process::Command;

#[test]
fn owslib_lists_describes_and_executes() {
    let dir = scratch("owslib");
    let cfg = write_service_config(&dir, "wps.cfg", "");
    let a = Apache::start_in(
        dir,
        Mpm::Event,
        &format!(
            "WPSDaemonProcess pywps threads=2\nWPSScriptAlias /wps {}\n",
            cfg.display()
        ),
    );
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
