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

/// A Python venv with OWSLib 0.35 from PyPI (Debian's 0.27 has no `execute` for OGC API –
/// Processes), made once under `target/`.
fn owslib_venv() -> std::path::PathBuf {
    let venv = manifest_dir().join("target/owslib-0.35-venv");
    let python = venv.join("bin/python3");
    let ready = Command::new(&python)
        .args(["-c", "import owslib; assert owslib.__version__ == '0.35.0'"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let ok = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv (python3-venv)");
        assert!(ok.success(), "python3 -m venv failed");
        let out = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "OWSLib==0.35.0"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install OWSLib==0.35.0: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    python
}

#[test]
fn owslib_ogcapi_processes_lists_describes_and_executes() {
    let python = owslib_venv();
    let dir = scratch("owslib-ogcapi");
    let cfg = write_service_config(&dir, "wps.cfg", "");
    let a = Apache::start_in(
        dir,
        Mpm::Event,
        &format!("WPSScriptAlias /wps {}\n", cfg.display()),
    );
    let out = Command::new(python)
        .arg(manifest_dir().join("tests/owslib_ogcapi.py"))
        .arg(format!("http://127.0.0.1:{}/wps/api", a.port))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "OWSLib OGC API client failed:\n{text}"
    );
    assert!(text.contains("owslib-ogcapi: ok"), "{text}");
}
