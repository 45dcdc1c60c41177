//! The peer conformance corpus (`../shared/peer-corpus/`): 63 WPS 1.0.0 requests as other
//! projects write them, sent by its own runner `peer_checks.py` to a real Apache serving the
//! service at `/wps` on loopback (with `allowedhosts = 127.0.0.1`, so that the corpus's own
//! loopback server can be used for reference inputs). Every case must pass.

mod common;
use common::*;
use std::process::Command;

#[test]
fn peer_corpus_all_pass() {
    let corpus = manifest_dir().join("../shared/peer-corpus/peer_checks.py");
    let validator = manifest_dir().join("../shared/bin/wps-validate");
    assert!(
        corpus.exists(),
        "{} not found (shared/ must sit beside the project)",
        corpus.display()
    );
    let a = Apache::builder("peer")
        .service_config(
            "[metadata:main]\nidentification_title = Peer corpus WPS\nprovider_name = mod_wps tests\n\n\
             [server]\nlanguage = en-US\nallowedhosts = 127.0.0.1\nworkdir = {work}\n\n\
             [processes]\nbuiltin = all\n",
        )
        .pool("pywps threads=4")
        .start();
    let out = Command::new("python3")
        .arg(&corpus)
        .arg(format!("http://127.0.0.1:{}", a.port))
        .arg(&validator)
        .env_remove("PEER_ONLY")
        .output()
        .expect("python3 not installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains("peer requests OK"))
        .unwrap_or("");
    let all_ok = last
        .split_whitespace()
        .next()
        .and_then(|n| n.split_once('/'))
        .is_some_and(|(ok, total)| ok == total && ok != "0");
    assert!(
        out.status.success() && all_ok,
        "peer corpus: not every case passes\n{text}"
    );
}
