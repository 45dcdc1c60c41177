//! XML (POST body) parser: must never panic, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mod_wps::front::wps1::xml_request::parse(data);
});
