//! The request decoder must answer every input with a request or a JSON-RPC
//! error, never a panic, and error replies must always be encodable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match kms_jsonrpc::codec::decode(&text, 1 << 20) {
        Ok(_) => {}
        Err(e) => {
            let _ = kms_jsonrpc::codec::encode_error(&e);
        }
    }
});
