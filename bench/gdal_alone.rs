//! "GDAL alone": the physical limit for a real-workload request. Runs a built-in process
//! (`feature_count`, `centroids`, `buffer`, `area`) through the same `Process` trait the
//! server calls, on the same input value the server hands it for an Execute request that
//! carries the layer inline (the XML between `<wps:ComplexData>` and `</wps:ComplexData>`) or
//! base64 encoded, in a loop on N threads for a fixed time, and prints the executions per
//! second. No HTTP, no request parsing, no response document: only the process's own work
//! (base64 decoding included, as the process does it).
//!
//! usage: gdal_alone PROCESS inline|base64 THREADS SECONDS GML_FILE
//! (built by `cargo build --release --example gdal_alone`; bench/bench.py --workloads runs it)

use base64::Engine as _;
use mod_wps::model::{ComplexValue, Context, Inputs, OutputValue, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The input value of `process`'s layer as the server passes it for a request whose
/// `<wps:ComplexData>` holds `gml` inline (`body` below) or base64 encoded.
fn inputs(process: &str, encoding: &str, gml: &str) -> Inputs {
    let layer = if process == "buffer" {
        "poly_in"
    } else {
        "layer"
    };
    let value = if encoding == "base64" {
        ComplexValue {
            mime_type: Some("application/gml+xml".into()),
            encoding: Some("base64".into()),
            content: base64::engine::general_purpose::STANDARD.encode(gml).into(),
            is_xml: false,
            ..Default::default()
        }
    } else {
        ComplexValue {
            mime_type: Some("application/gml+xml".into()),
            content: format!("\n{gml}\n").into(),
            is_xml: true,
            ..Default::default()
        }
    };
    let mut v = vec![(layer.to_string(), Value::Complex(value))];
    if process == "buffer" {
        v.push(("buffer".into(), Value::Literal("10".into())));
    }
    Inputs(v)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [process, encoding, threads, seconds, file] = &args[..] else {
        eprintln!("usage: gdal_alone PROCESS inline|base64 THREADS SECONDS GML_FILE");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let text = std::fs::read_to_string(file).expect("GML_FILE");
    // as embedded in a request: without its own XML declaration
    let gml = &text[text.find("<ogr:FeatureCollection").unwrap_or(0)..];
    let p = mod_wps::processes::builtin(process).expect("a built-in process");
    let inputs = Arc::new(inputs(process, encoding, gml));
    // one run first: the output must be there (and GDAL's drivers registered)
    let out = p
        .execute(&inputs, &Context::detached())
        .expect("the process runs");
    let first = &out.0.first().expect("an output").1;
    let size = match first {
        OutputValue::Literal(s) => s.len(),
        OutputValue::Complex { data, .. } => data.len(),
        OutputValue::BoundingBox(_) => 0,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (p, inputs, stop, done) = (p.clone(), inputs.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let ctx = Context::detached();
                while !stop.load(Ordering::Relaxed) {
                    p.execute(&inputs, &ctx).expect("the process runs");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    // executions finished within the time, as wrk counts responses
    let n = done.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a worker");
    }
    println!(
        "{{\"process\": \"{process}\", \"encoding\": \"{encoding}\", \"threads\": {threads}, \
         \"runs\": {n}, \"seconds\": {elapsed:.3}, \"per_second\": {:.2}, \"output_bytes\": {size}}}",
        n as f64 / elapsed
    );
}
