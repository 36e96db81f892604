#![allow(clippy::expect_used)]
//! Reading and writing a 150-entry Java truststore (trusted-certificate entries only), the
//! shape of a JDK's `cacerts`. The certificates are issued at setup by the embedded CA, so the
//! bench needs nothing from the machine.
//!
//! `cargo bench --bench jks_truststore`

use criterion::{Criterion, criterion_group, criterion_main};
use pfxkit::catalog::ca::KeyType;
use pfxkit::catalog::service::{EnrollRequest, Service};
use pfxkit::jks::{self, KeystoreKind, WriteEntry};
use pfxkit::{Certificate, Limits, Password};

const ENTRIES: usize = 150;

fn truststore(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Service::init(&dir.path().join("catalog")).expect("catalog");
    service
        .ca_init("CN=Bench Root", KeyType::EcP256, None)
        .expect("CA");
    let certs: Vec<Certificate> = (0..ENTRIES)
        .map(|i| {
            let request = EnrollRequest::new(format!("CN=trusted-{i}.example.com,O=pfxkit"))
                .key_type(KeyType::Ed25519);
            service
                .enroll(&request, &Password::new(""))
                .expect("enroll")
                .certificate
        })
        .collect();
    let aliases: Vec<String> = (0..ENTRIES).map(|i| format!("trusted-{i}")).collect();
    let entries: Vec<WriteEntry<'_>> = certs
        .iter()
        .zip(&aliases)
        .map(|(certificate, alias)| WriteEntry::Trusted { alias, certificate })
        .collect();
    let password = Password::new("changeit");
    let limits = Limits::default();
    let bytes = jks::write(KeystoreKind::Jks, &entries, &password).expect("write");
    assert_eq!(
        jks::read(&bytes, &password, &limits)
            .expect("read")
            .entries()
            .len(),
        ENTRIES
    );

    let mut group = c.benchmark_group("jks_truststore_150");
    group.bench_function("write", |b| {
        b.iter(|| jks::write(KeystoreKind::Jks, &entries, &password).expect("write"))
    });
    group.bench_function("read", |b| {
        b.iter(|| jks::read(&bytes, &password, &limits).expect("read"))
    });
    group.finish();
}

criterion_group!(benches, truststore);
criterion_main!(benches);
