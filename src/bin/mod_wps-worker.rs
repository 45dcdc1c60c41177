//! `mod_wps-worker SCRIPT` (or `--config=FILE --job=ID --attempt=N`): runs one asynchronous job
//! of a mod_wps service on a Slurm node. mod_wps submits jobs of processes with
//! `dispatch = slurm` as batch scripts whose interpreter line is this program, installed next
//! to the module (see `mod_wps::exec::slurm::worker`).
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(mod_wps::exec::slurm::worker::main(&args));
}
