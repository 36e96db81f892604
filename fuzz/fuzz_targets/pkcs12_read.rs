//! `pkcs12::read` on arbitrary bytes, with a fixed password and with none (which tries both the
//! empty and the absent password). It must return `Ok` or `Err`, never panic, overflow the
//! stack or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pfxkit::{Limits, Password, pkcs12};

fuzz_target!(|data: &[u8]| {
    // Lower work-factor caps than the defaults so that a mutated iteration count or a pile of
    // keys costs milliseconds, not seconds, per input (under ASan); the seeds still pass them.
    let mut limits = Limits::default();
    limits.max_iterations = 4096;
    limits.max_total_iterations = 16_384;
    limits.max_work = 2_500_000;
    let _ = pkcs12::read(data, Some(&Password::new("pfxkit-pass")), &limits);
    let _ = pkcs12::read(data, None, &limits);
});
