//! KVP (GET query string) parser: must never panic, whatever the query.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = mod_wps::front::wps1::kvp::parse(q);
        // the same query as an Execute, so DataInputs / ResponseDocument parsing is reached
        let q = format!("service=WPS&version=1.0.0&request=Execute&identifier=p&{q}");
        let _ = mod_wps::front::wps1::kvp::parse(&q);
    }
    let lossy = String::from_utf8_lossy(data);
    let _ = mod_wps::model::parse_kvp_bbox(&lossy);
});
