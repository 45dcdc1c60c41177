//! `testjson`: a complex JSON output built from a literal input.

use super::*;
use crate::model::*;

pub fn testjson() -> Builtin {
    Builtin::new(
        ProcessDescription {
            identifier: "testjson".into(),
            title: "Process Test".into(),
            abstract_: "Returns a JSON document built from the input name".into(),
            version: "1.0".into(),
            inputs: vec![literal_input("name", "Input name", LiteralType::String)],
            outputs: vec![OutputSpec {
                identifier: "out".into(),
                title: "Referenced Output".into(),
                abstract_: String::new(),
                data: DataSpec::Complex {
                    formats: vec![Format::mime("application/json")],
                    maximum_megabytes: None,
                },
            }],
            store_supported: true,
            status_supported: true,
        },
        execute,
    )
    .quick()
}

fn execute(inputs: &Inputs, _ctx: &Context) -> Result<Outputs, ProcessError> {
    let name = inputs.literal("name").unwrap_or_default();
    let doc = serde_json::json!({
        "name": name,
        "greeting": format!("Hello {name}"),
        "length": name.chars().count(),
    });
    let data = serde_json::to_vec_pretty(&doc).map_err(|e| ProcessError::Failed(e.to_string()))?;
    Ok(Outputs(vec![(
        "out".into(),
        OutputValue::Complex {
            mime_type: "application/json".into(),
            data,
        },
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn json_is_valid_and_escaped() {
        let i = Inputs(vec![("name".into(), Value::Literal("a\"<b>".into()))]);
        let o = testjson().execute(&i, &Context::detached()).unwrap();
        let Some(OutputValue::Complex { data, mime_type }) = o.get("out") else {
            panic!("no complex output")
        };
        assert_eq!(mime_type, "application/json");
        let v: serde_json::Value = serde_json::from_slice(data).unwrap();
        assert_eq!(v["name"], "a\"<b>");
        assert_eq!(v["greeting"], "Hello a\"<b>");
    }
}
