//! The A2A JSON-RPC binding as a server and a client read it: `parse_request` of a request body
//! in either version (what every `POST /a2a/...` hands it), and `parse_response` /
//! `decode_result` of a remote agent's answer. The first byte picks the version and, for
//! responses, the method; the rest is the body.
//!
//! Property: a request that parses is encoded again by `encode_request` in its version and
//! parses back to the same id and call (what `every_call_round_trips_through_both_versions`
//! checks for hand-made calls).

#![no_main]

use hive_a2a::jsonrpc::{self, Limits, Method, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let version = if selector & 1 == 0 {
        Version::V1_0
    } else {
        Version::V0_3
    };
    let limits = Limits::default();

    let _ = jsonrpc::parse_request_head(body, &limits);
    if let Ok(request) = jsonrpc::parse_request(body, version, &limits) {
        assert_eq!(request.version, version);
        let encoded = jsonrpc::encode_request(&request.id, &request.call, version)
            .unwrap_or_else(|error| panic!("a parsed call does not encode: {error:?}"));
        if encoded.len() <= limits.max_body_bytes {
            let again = jsonrpc::parse_request(&encoded, version, &limits)
                .unwrap_or_else(|error| panic!("an encoded call does not parse: {error:?}"));
            assert_eq!(again.id, request.id);
            assert_eq!(again.call, request.call, "{version:?}");
        }
    }

    if let Ok(response) = jsonrpc::parse_response(body, &limits) {
        if let Ok(result) = response.result {
            let methods = Method::all();
            let method = methods[usize::from(selector >> 1) % methods.len()];
            let _ = jsonrpc::decode_result(method, version, result);
        }
    }
});
