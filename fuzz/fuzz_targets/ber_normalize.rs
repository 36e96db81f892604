//! The BER → DER normaliser on arbitrary bytes: never panics, and its output is a fixed point
//! (normalising DER again changes nothing), since every decoder after it assumes strict DER.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pfxkit::asn1::ber;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = ber::normalize(data, 64) {
        match ber::normalize(&der, 64) {
            Ok(again) => assert_eq!(again, der, "normalised output is not a fixed point"),
            Err(e) => panic!("normalised output does not normalise again: {e}"),
        }
    }
});
