//! Converts a Java keystore (JKS or JCEKS) into a PKCS#12 file: key entries with their chains,
//! trusted certificate entries as Java-trusted certificates.
//!
//! ```sh
//! cargo run --example jks_to_pkcs12 -- app.jks STORE_PASSWORD KEY_PASSWORD app.p12 OUT_PASSWORD
//! ```

use pfxkit::jks::{self, Entry};
use pfxkit::pkcs12::{Builder, Profile};
use pfxkit::{Limits, Password};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, store_password, key_password, output, out_password] = args.as_slice() else {
        return Err(
            "usage: jks_to_pkcs12 IN.jks STORE_PASSWORD KEY_PASSWORD OUT.p12 OUT_PASSWORD".into(),
        );
    };
    let limits = Limits::default();
    // The store digest is checked before anything in the store is trusted.
    let store = jks::read(
        &std::fs::read(input)?,
        &Password::new(store_password.as_str()),
        &limits,
    )?;
    let key_password = Password::new(key_password.as_str());
    let mut builder = Builder::new(Profile::Modern);
    for entry in store.entries() {
        match entry {
            Entry::PrivateKey(key) => {
                builder =
                    builder.identity(key.identity(&key_password, &limits)?, Some(key.alias()));
            }
            Entry::Trusted(trusted) => {
                builder =
                    builder.trusted_certificate(trusted.certificate().clone(), trusted.alias());
            }
            other => println!(
                "skipped entry '{}': not a key or certificate",
                other.alias()
            ),
        }
    }
    std::fs::write(
        output,
        builder.build(&Password::new(out_password.as_str()), &limits)?,
    )?;
    println!("wrote {output}");
    Ok(())
}
