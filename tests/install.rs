//! The Debian-style install (`.ci/install`) and the .deb (`.ci/install deb`) against the real
//! system: files land where Apache expects them, `a2enmod wps` makes a config that includes
//! `mods-enabled/wps.load` serve `/etc/wps/wps.cfg`, `a2dismod` and uninstall/`dpkg -P` remove
//! everything. Needs root (CI runs as root on a throwaway machine). Every path it touches is
//! saved first and put back at the end, even when the test fails, so an installed demo
//! (`bash .ci/demo`) survives; the system Apache itself is never restarted by this test.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PKG: &str = "libapache2-mod-wps";

fn libexec() -> String {
    let out = Command::new("apxs")
        .args(["-q", "LIBEXECDIR"])
        .output()
        .expect("apxs (apache2-dev)");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Every path the install, the .deb or a2enmod may create.
fn paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        "/etc/apache2/mods-available/wps.load",
        "/etc/apache2/mods-available/wps.conf",
        "/etc/apache2/mods-enabled/wps.load",
        "/etc/apache2/mods-enabled/wps.conf",
        "/usr/share/mod_wps/wps.cfg",
        "/usr/share/mod_wps/wps-vhost.conf",
        "/etc/wps/wps.cfg",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    v.push(Path::new(&libexec()).join("mod_wps.so"));
    v.push(Path::new(&libexec()).join("mod_wps-supervise"));
    v.push(Path::new(&libexec()).join("mod_wps-worker"));
    v
}

/// a2enmod/a2dismod's record of who enabled or disabled the module.
fn state_paths() -> Vec<PathBuf> {
    ["enabled_by_admin", "disabled_by_admin", "enabled_by_maint"]
        .iter()
        .map(|d| Path::new("/var/lib/apache2/module").join(d).join("wps"))
        .collect()
}

enum Saved {
    Absent,
    Link(PathBuf),
    File(Vec<u8>, u32),
}

/// Saves the paths on creation and puts them back when dropped (also on panic).
struct Restore {
    saved: Vec<(PathBuf, Saved)>,
    dirs: Vec<(PathBuf, bool)>,
    _lock: fs::File,
}

impl Restore {
    fn new() -> Restore {
        // one run of this test at a time on the machine
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/lock/mod_wps-install-test.lock")
            .unwrap();
        lock.lock().unwrap();
        let saved = paths()
            .into_iter()
            .chain(state_paths())
            .map(|p| {
                let s = match fs::symlink_metadata(&p) {
                    Err(_) => Saved::Absent,
                    Ok(m) if m.file_type().is_symlink() => Saved::Link(fs::read_link(&p).unwrap()),
                    Ok(m) => Saved::File(fs::read(&p).unwrap(), m.mode() & 0o7777),
                };
                (p, s)
            })
            .collect();
        let dirs = ["/etc/wps", "/usr/share/mod_wps"]
            .iter()
            .map(|d| (PathBuf::from(d), Path::new(d).exists()))
            .collect();
        Restore {
            saved,
            dirs,
            _lock: lock,
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if is_installed(PKG) {
            let _ = dpkg(&["-P", PKG]);
        }
        for (p, s) in &self.saved {
            let _ = fs::remove_file(p);
            match s {
                Saved::Absent => {}
                Saved::Link(t) => {
                    let _ = std::os::unix::fs::symlink(t, p);
                }
                Saved::File(data, mode) => {
                    let _ = fs::create_dir_all(p.parent().unwrap());
                    // through a new file: a running Apache may have the module mapped
                    let tmp = p.with_extension("restore.tmp");
                    if fs::write(&tmp, data).is_ok() {
                        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(*mode));
                        let _ = fs::rename(&tmp, p);
                    }
                }
            }
        }
        for (d, existed) in &self.dirs {
            if !existed {
                let _ = fs::remove_dir(d);
            }
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A copy of the freshly built module, taken once (a concurrent cargo build may replace the
/// original meanwhile).
fn module_copy() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let p = scratch("install-module").join("mod_wps.so");
        fs::copy(module_path(), &p).unwrap();
        p
    })
    .clone()
}

/// A copy of the freshly built supervisor, taken once.
fn supervisor_copy() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let p = scratch("install-supervisor").join("mod_wps-supervise");
        fs::copy(env!("CARGO_BIN_EXE_mod_wps-supervise"), &p).unwrap();
        p
    })
    .clone()
}

/// A copy of the freshly built Slurm worker, taken once.
fn worker_copy() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let p = scratch("install-worker").join("mod_wps-worker");
        fs::copy(env!("CARGO_BIN_EXE_mod_wps-worker"), &p).unwrap();
        p
    })
    .clone()
}

/// Asserts two files have the same content (without printing them).
fn assert_same(a: &Path, b: &Path) {
    let (x, y) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(x == y, "{} differs from {}", a.display(), b.display());
}

fn install_script(arg: &str) -> Output {
    run(Command::new("bash")
        .arg(manifest_dir().join(".ci/install"))
        .arg(arg)
        .env("MOD_WPS_SO", module_copy())
        .env("MOD_WPS_SUPERVISE", supervisor_copy())
        .env("MOD_WPS_WORKER", worker_copy())
        .env_remove("DESTDIR"))
}

/// dpkg, waiting while another dpkg/apt holds its lock.
fn dpkg(args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && err.contains("lock") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        return out;
    }
}

fn is_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn exists(p: &str) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// A test server whose httpd.conf loads the module the way the system does: through the
/// links `a2enmod wps` made, and serves `/etc/wps/wps.cfg` at /wps.
fn system_like_conf(conf: String) -> String {
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("LoadModule wps_module"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "{conf}\nInclude /etc/apache2/mods-enabled/wps.load\nInclude /etc/apache2/mods-enabled/wps.conf\n\
         WPSScriptAlias /wps /etc/wps/wps.cfg\n"
    )
}

#[test]
fn install_enable_serve_uninstall_and_deb() {
    assert!(
        is_root(),
        "tests/install.rs installs mod_wps into the system and must run as root (CI does)"
    );
    let _restore = Restore::new();
    assert!(
        !is_installed(PKG),
        "{PKG} is installed on this machine; remove it (dpkg -P {PKG}) before running this test"
    );
    let so = Path::new(&libexec()).join("mod_wps.so");
    let so = so.to_str().unwrap().to_owned();

    // a clean slate (an installed demo is put back at the end)
    if exists("/etc/apache2/mods-enabled/wps.load") {
        run(Command::new("a2dismod").args(["-q", "-f", "wps"]));
    }
    for p in paths() {
        let _ = fs::remove_file(p);
    }

    // install
    install_script("install");
    assert_same(Path::new(&so), &module_copy());
    let sup = Path::new(&libexec()).join("mod_wps-supervise");
    assert_same(&sup, &supervisor_copy());
    assert_eq!(fs::metadata(&sup).unwrap().mode() & 0o777, 0o755);
    let worker = Path::new(&libexec()).join("mod_wps-worker");
    assert_same(&worker, &worker_copy());
    assert_eq!(fs::metadata(&worker).unwrap().mode() & 0o777, 0o755);
    let load = fs::read_to_string("/etc/apache2/mods-available/wps.load").unwrap();
    assert!(
        load.contains(&format!("LoadModule wps_module {so}\n")),
        "{load}"
    );
    assert_eq!(
        fs::read("/etc/apache2/mods-available/wps.conf").unwrap(),
        fs::read(manifest_dir().join("apache/wps.conf")).unwrap()
    );
    let example = fs::read_to_string(manifest_dir().join("conf/wps.cfg")).unwrap();
    assert_eq!(fs::read_to_string("/etc/wps/wps.cfg").unwrap(), example);
    assert!(exists("/usr/share/mod_wps/wps-vhost.conf"));
    assert!(
        !exists("/etc/apache2/mods-enabled/wps.load"),
        "install does not enable"
    );

    // a second install keeps an edited /etc/wps/wps.cfg
    let edited = format!("{example}\n# edited by the administrator\n");
    fs::write("/etc/wps/wps.cfg", &edited).unwrap();
    install_script("install");
    assert_eq!(fs::read_to_string("/etc/wps/wps.cfg").unwrap(), edited);

    // a2enmod wps, then a server that includes what a2enmod enabled
    run(Command::new("a2enmod").args(["-q", "wps"]));
    assert!(fs::symlink_metadata("/etc/apache2/mods-enabled/wps.load")
        .unwrap()
        .file_type()
        .is_symlink());
    {
        let a = Apache::builder("install")
            .no_service()
            .edit_conf(system_like_conf)
            .start();
        let r = a.get("/wps?service=WPS&request=GetCapabilities");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text().contains("mod_wps Demo Processing Service"),
            "{}",
            r.text()
        );
        let r = a.get(
            "/wps?service=WPS&version=1.0.0&request=Execute&identifier=say_hello&DataInputs=name=Debian",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("Hello Debian"), "{}", r.text());
    }

    // a2dismod, uninstall (keeps the edited config), uninstall again with it unedited
    run(Command::new("a2dismod").args(["-q", "wps"]));
    assert!(!exists("/etc/apache2/mods-enabled/wps.load"));
    assert!(!exists("/etc/apache2/mods-enabled/wps.conf"));
    let out = install_script("uninstall");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("keeping /etc/wps/wps.cfg"),
        "{out:?}"
    );
    for p in paths() {
        if p != Path::new("/etc/wps/wps.cfg") {
            assert!(!exists(p.to_str().unwrap()), "{} left behind", p.display());
        }
    }
    assert_eq!(fs::read_to_string("/etc/wps/wps.cfg").unwrap(), edited);
    fs::write("/etc/wps/wps.cfg", &example).unwrap();
    install_script("uninstall");
    assert!(!exists("/etc/wps/wps.cfg"), "an unedited config is removed");

    // the .deb on a machine that never had the module: dpkg -i installs and enables it
    // (apache2-maintscript-helper respects an admin's a2dismod, so forget ours), the module
    // loads, dpkg -P removes everything
    for p in state_paths() {
        let _ = fs::remove_file(p);
    }
    let debdir = scratch("deb");
    let out = install_script_deb(&debdir);
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{deb}");
    let info = run(Command::new("dpkg-deb").args(["-f", &deb, "Package", "Depends"]));
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains(PKG) && info.contains("apache2-api-20120211"),
        "{info}"
    );
    let out = dpkg(&["-i", &deb]);
    assert!(out.status.success(), "dpkg -i: {out:?}");
    assert!(is_installed(PKG));
    let listed =
        String::from_utf8_lossy(&run(Command::new("dpkg").args(["-L", PKG])).stdout).into_owned();
    let sup = format!("{}/mod_wps-supervise", libexec());
    let worker = format!("{}/mod_wps-worker", libexec());
    for f in [
        so.as_str(),
        sup.as_str(),
        worker.as_str(),
        "/etc/apache2/mods-available/wps.load",
        "/etc/apache2/mods-available/wps.conf",
        "/usr/share/mod_wps/wps.cfg",
    ] {
        assert!(
            listed.lines().any(|l| l == f),
            "{f} not in the package:\n{listed}"
        );
        assert!(exists(f), "{f} not installed");
    }
    assert_same(Path::new(&so), &module_copy());
    assert_eq!(fs::read_to_string("/etc/wps/wps.cfg").unwrap(), example);
    if Path::new("/usr/share/apache2/apache2-maintscript-helper").exists() {
        assert!(
            exists("/etc/apache2/mods-enabled/wps.load"),
            "postinst enables the module"
        );
    } else {
        run(Command::new("a2enmod").args(["-q", "wps"]));
    }
    let dir = scratch("deb-configtest");
    let conf = dir.join("httpd.conf");
    fs::write(&conf, system_like_conf(httpd_conf(&dir, 9, Mpm::Event, ""))).unwrap();
    let t = Command::new("apache2")
        .args(["-t", "-f"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "apache2 -t with the packaged module: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let _ = fs::remove_dir_all(&dir);
    let out = dpkg(&["-P", PKG]);
    assert!(out.status.success(), "dpkg -P: {out:?}");
    assert!(!is_installed(PKG));
    for p in paths() {
        assert!(
            !exists(p.to_str().unwrap()),
            "{} left after purge",
            p.display()
        );
    }
    let _ = fs::remove_dir_all(&debdir);
    let _ = fs::remove_dir_all(module_copy().parent().unwrap());
    let _ = fs::remove_dir_all(supervisor_copy().parent().unwrap());
    let _ = fs::remove_dir_all(worker_copy().parent().unwrap());
}

fn install_script_deb(out: &Path) -> Output {
    run(Command::new("bash")
        .arg(manifest_dir().join(".ci/install"))
        .arg("deb")
        .arg(out)
        .env("MOD_WPS_SO", module_copy())
        .env("MOD_WPS_SUPERVISE", supervisor_copy())
        .env("MOD_WPS_WORKER", worker_copy())
        .env_remove("DESTDIR"))
}
