//! The PEM store's inventory (key-entry and trust-only modes) and `pem::read_bundle` on arbitrary
//! bytes written to a file: `Ok` or `Err`, never a panic or a hang.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pfxkit::store::StoreAdapter;
use pfxkit::store::pem::PemStore;
use pfxkit::{Limits, Password, pem};

/// One file per fuzzing process, rewritten for every input.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pfxkit-fuzz-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("store.pem")
    })
}

fuzz_target!(|data: &[u8]| {
    // Encrypted PKCS#8 keys carry their own iteration count: a lower cap than the default keeps a
    // mutated count at milliseconds per input.
    let mut limits = Limits::default();
    limits.max_iterations = 4096;
    limits.max_work = 2_500_000;
    if let Ok(bundle) = pem::read_bundle(data, Some(&Password::new("pfxkit-pass")), &limits) {
        let _ = bundle.identities(&limits);
    }
    let _ = pem::read_bundle(data, None, &limits);
    let _ = pem::scan(data, &limits);

    let path = path();
    std::fs::write(path, data).expect("write temp file");
    let _ = PemStore::new(path).inventory();
    let _ = PemStore::trust_only(path).inventory();
});
