//! Generates Rust bindings for the httpd and APR headers (located with `apxs -q` and
//! `apr-1-config`) and compiles the small C shim that expands httpd's logging macros.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn query(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cmd}` ({e}); install apache2-dev (Debian)"));
    assert!(out.status.success(), "`{cmd} {}` failed", args.join(" "));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn main() {
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let httpd_inc = query(&apxs, &["-q", "INCLUDEDIR"]);
    let apr_inc = query("apr-1-config", &["--includedir"]);
    let apu_inc = Command::new("apu-1-config")
        .arg("--includedir")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut includes = vec![httpd_inc, apr_inc];
    if !apu_inc.is_empty() && !includes.contains(&apu_inc) {
        includes.push(apu_inc);
    }
    println!("cargo:rerun-if-changed=src/apache/shim.c");
    println!("cargo:rerun-if-changed=src/apache/wrapper.h");
    println!("cargo:rerun-if-env-changed=APXS");

    let mut build = cc::Build::new();
    build.file("src/apache/shim.c").warnings(true);
    for i in &includes {
        build.include(i);
    }
    build.compile("wps_shim");

    let mut b = bindgen::Builder::default()
        .header("src/apache/wrapper.h")
        .allowlist_function("ap_(hook_.*|get_client_block|setup_client_block|should_client_block|set_content_type|set_content_length|rwrite|rflush|state_query|get_server_name_for_url|get_server_port|construct_url|escape_html2|unixd_config|mpm_query|server_root_relative|exists_config_define)")
        .allowlist_function("apr_(table_set|table_get|table_setn|table_add|pstrdup|pstrmemdup|palloc|pcalloc|pool_cleanup_register|pool_cleanup_null|pool_userdata_get|pool_userdata_set)")
        .allowlist_function("wps_log_.*")
        .allowlist_type("module|command_rec|cmd_parms|request_rec|server_rec|conn_rec|process_rec|apr_array_header_t|apr_table_entry_t")
        .allowlist_var("ap_unixd_config")
        .allowlist_var("MODULE_MAGIC_.*|APR_HOOK_.*|OK|DECLINED|DONE|RSRC_CONF|ACCESS_CONF|OR_.*|REQUEST_CHUNKED_.*|M_(GET|POST|HEAD|OPTIONS)|APLOG_(EMERG|ALERT|CRIT|ERR|WARNING|NOTICE|INFO|DEBUG|TRACE1)|AP_SQ_.*|AP_MPMQ_.*|HTTP_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for i in &includes {
        b = b.clang_arg(format!("-I{i}"));
    }
    let bindings = b.generate().expect("bindgen over the httpd headers failed");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings");
}
