//! Puts the key and chain of a PKCS#12 file into a certificate store (PEM, PKCS#12 or JKS) under
//! an alias, as one crash-safe transaction: the store is locked, written beside, fsynced and
//! renamed into place, so it holds either the old entries or the new ones.
//!
//! ```sh
//! cargo run --example store_add -- pkcs12 web.p12 STORE_PASSWORD web new.p12 PFX_PASSWORD
//! ```

use pfxkit::store::{self, AddOptions, StoreSpec, StoreType};
use pfxkit::{Limits, Password, pkcs12};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, path, store_password, alias, pfx, pfx_password] = args.as_slice() else {
        return Err(
            "usage: store_add pem|pkcs12|jks STORE STORE_PASSWORD ALIAS NEW.p12 PFX_PASSWORD"
                .into(),
        );
    };
    let store_type: StoreType = kind.parse()?;
    let archive = pkcs12::read(
        &std::fs::read(pfx)?,
        Some(&Password::new(pfx_password.as_str())),
        &Limits::default(),
    )?;
    let identity = archive
        .identities()
        .into_iter()
        .next()
        .ok_or("the PKCS#12 file holds no key with its certificate")?;

    let spec = StoreSpec::new(store_type, path)
        .store_password(Some(Password::new(store_password.as_str())));
    let store = store::open(&spec)?;
    // Overwrite an existing alias; create the store when it does not exist yet. The entry
    // password (PEM key encryption, JKS key password) is the store password here.
    let used = store.add(
        Some(alias),
        &identity,
        Some(&Password::new(store_password.as_str())),
        AddOptions::new(true, true),
    )?;
    for entry in store.inventory()? {
        println!(
            "{}{}",
            entry.alias,
            if entry.alias == used { "  (added)" } else { "" }
        );
    }
    Ok(())
}
