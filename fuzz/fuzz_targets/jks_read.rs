//! `jks::read` (with the fixtures' store password) and `jks::read_unverified` on arbitrary bytes:
//! `Ok` or `Err`, never a panic, a runaway allocation or a hang. Key entries read without the
//! digest are also decrypted, so the JKS key protector and JCEKS PBE parsers see mutated input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pfxkit::jks::{self, Entry};
use pfxkit::{Limits, Password};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let password = Password::new("store-pass");
    let _ = jks::read(data, &password, &limits);
    if let Ok(store) = jks::read_unverified(data, &limits) {
        // JCEKS keys carry their own iteration count; a lower cap than the default keeps a
        // mutated count at milliseconds per input (keytool's 200,000 still costs ~0.1 s).
        let mut key_limits = Limits::default();
        key_limits.max_iterations = 4096;
        key_limits.max_work = 2_500_000;
        let _ = store.identities(&password, &key_limits);
        let _ = store.decrypt_keys(&password, &key_limits);
        for entry in store.entries() {
            if let Entry::PrivateKey(key) = entry {
                let _ = key.identity(&password, &key_limits);
            }
        }
    }
});
