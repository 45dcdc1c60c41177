//! Panics as data: a quiet panic hook and the message of a caught panic, so that whoever
//! catches a panic (a pool worker, a job, the Apache glue) can log it properly.

thread_local! {
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces the default panic hook (which prints to stderr, i.e. untimestamped into Apache's
/// error log) with one that only remembers where the panic happened; the code that catches
/// the panic logs it properly with `panic_message`.
pub fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
}

/// The message of a panic payload (with its location when the quiet hook recorded it).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let msg = if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    };
    match PANIC_AT.with(|p| p.borrow_mut().take()) {
        Some(at) => format!("{msg} (at {at})"),
        None => msg,
    }
}
