//! `say_hello`: the PyWPS demo greeting.

use super::*;
use crate::model::*;

pub fn say_hello() -> Builtin {
    Builtin::new(
        ProcessDescription {
            identifier: "say_hello".into(),
            title: "Process Say Hello".into(),
            abstract_: "Returns a literal string output with Hello plus the inputed name".into(),
            version: "1.3.3".into(),
            inputs: vec![literal_input("name", "Input name", LiteralType::String)],
            outputs: vec![literal_output(
                "response",
                "Output response",
                LiteralType::String,
            )],
            store_supported: true,
            status_supported: true,
        },
        execute,
    )
    .quick()
}

fn execute(inputs: &Inputs, _ctx: &Context) -> Result<Outputs, ProcessError> {
    let name = inputs.literal("name").unwrap_or_default();
    Ok(Outputs(vec![(
        "response".into(),
        OutputValue::Literal(format!("Hello {name}")),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn greets() {
        let i = Inputs(vec![("name".into(), Value::Literal("Ada".into()))]);
        let o = say_hello().execute(&i, &Context::detached()).unwrap();
        assert_eq!(
            o.get("response"),
            Some(&OutputValue::Literal("Hello Ada".into()))
        );
    }
}
