//! The HTTP API's request handling, in process (`pfxkit_server::fuzzing::Harness`): every
//! request — any endpoint of the router, any method, query string and body, as an
//! authenticated caller holding every permission — is answered, and never with a 5xx (bad
//! input is the caller's error: a 4xx naming it).
//!
//! Input: a method byte, an endpoint byte, an id byte, then the query string up to the first
//! newline and the body after it — plain bytes, so seeds are readable (`seeds/api_request/`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pfxkit_server::fuzzing::Harness;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| Harness::new().expect("the fuzzing catalog"))
}

fuzz_target!(|data: &[u8]| {
    let [method, endpoint, id, rest @ ..] = data else {
        return;
    };
    let harness = harness();
    let endpoints: Vec<_> = Harness::endpoints().collect();
    let (its_method, template) = endpoints[usize::from(*endpoint) % endpoints.len()];
    let method = match method % 6 {
        0..=2 => its_method,
        3 => "GET",
        4 => "POST",
        _ => "DELETE",
    };
    let id = match id % 4 {
        0 => "1".to_string(),
        1 => harness.store_id().to_string(),
        2 => (u32::from(*id) * 7919).to_string(),
        _ => "-1".to_string(),
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let target = format!(
        "/KeyfactorAPI{}?{}",
        template.replace("{id}", &id),
        String::from_utf8_lossy(query)
    );
    if let Some((status, answer)) = harness.request(method, &target, body.to_vec()) {
        assert!(
            status < 500,
            "{status} for {method} {target}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
});
