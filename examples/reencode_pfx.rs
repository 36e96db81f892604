//! Reads a PKCS#12 file and writes it again under another profile and password, carrying every
//! entry across (keys with chains, certificates of no key, Java trusted entries, CRL and secret
//! bags).
//!
//! ```sh
//! cargo run --example reencode_pfx -- IN.p12 IN_PASSWORD OUT.p12 OUT_PASSWORD [legacy-3des]
//! ```

use pfxkit::pkcs12::{self, Builder, Profile};
use pfxkit::{Limits, Password};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, in_password, output, out_password, rest @ ..] = args.as_slice() else {
        return Err("usage: reencode_pfx IN.p12 IN_PASSWORD OUT.p12 OUT_PASSWORD [PROFILE]".into());
    };
    let profile: Profile = rest.first().map_or("modern", String::as_str).parse()?;
    let limits = Limits::default();

    let archive = pkcs12::read(
        &std::fs::read(input)?,
        Some(&Password::new(in_password.as_str())),
        &limits,
    )?;
    for identity in archive.identities() {
        println!(
            "key {}: {} (+{} CA)",
            identity.alias().unwrap_or("-"),
            identity.leaf().subject(),
            identity.chain().len().saturating_sub(1)
        );
    }
    let bytes = Builder::from_archive(profile, &archive)
        .build(&Password::new(out_password.as_str()), &limits)?;
    std::fs::write(output, bytes)?;
    println!("wrote {output} ({profile:?})");
    Ok(())
}
