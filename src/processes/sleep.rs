//! `sleep`: waits `delay` seconds five times, reporting progress 20/40/60/80 % in between
//! (as the PyWPS demo does). Cancellation is checked at every progress point and while sleeping.

use super::*;
use crate::model::*;
use std::time::Duration;

pub fn sleep() -> Builtin {
    let mut delay = literal_input("delay", "Delay between every update", LiteralType::Float);
    delay.abstract_ = "Seconds to wait between the five progress steps".into();
    Builtin::new(
        ProcessDescription {
            identifier: "sleep".into(),
            title: "Sleep Process".into(),
            abstract_:
                "The process will sleep for a given delay or 10 seconds if not a valid value".into(),
            version: "1.0".into(),
            inputs: vec![delay],
            outputs: vec![literal_output(
                "sleep_output",
                "Sleep Output",
                LiteralType::String,
            )],
            store_supported: true,
            status_supported: true,
        },
        execute,
    )
}

fn execute(inputs: &Inputs, ctx: &Context) -> Result<Outputs, ProcessError> {
    let delay = inputs
        .literal("delay")
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0)
        .unwrap_or(10.0);
    let step = Duration::from_secs_f64(delay.min(86_400.0));
    ctx.sleep(step)?;
    for pct in [20, 40, 60, 80] {
        ctx.progress(pct, "PyWPS Process started. Waiting...")?;
        ctx.sleep(step)?;
    }
    Ok(Outputs(vec![(
        "sleep_output".into(),
        OutputValue::Literal("done sleeping".into()),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reports_progress_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let ctx = Context::new(
            Arc::new(CancelToken::default()),
            Arc::new(move |p, _| s2.lock().unwrap().push(p)),
        );
        let i = Inputs(vec![("delay".into(), Value::Literal("0".into()))]);
        let o = sleep().execute(&i, &ctx).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![20, 40, 60, 80]);
        assert_eq!(
            o.get("sleep_output"),
            Some(&OutputValue::Literal("done sleeping".into()))
        );
    }

    #[test]
    fn stops_when_cancelled() {
        let token = Arc::new(CancelToken::default());
        token.cancel();
        let ctx = Context::new(token, Arc::new(|_, _| {}));
        let i = Inputs(vec![("delay".into(), Value::Literal("100".into()))]);
        assert_eq!(sleep().execute(&i, &ctx), Err(ProcessError::Cancelled));
    }
}
