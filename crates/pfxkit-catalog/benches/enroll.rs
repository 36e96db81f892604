#![allow(clippy::expect_used)]
//! Enrollments per second per key type: key generation, issuance by the embedded CA (an EC
//! P-256 intermediate), the PKCS#12 blob (modern profile) and the catalog transaction with its
//! sealed staged key.
//!
//! `cargo bench --bench enroll`

use criterion::{Criterion, criterion_group, criterion_main};
use pfxkit::Password;
use pfxkit_catalog::ca::{KeyType, San};
use pfxkit_catalog::service::{EnrollRequest, Service};

fn enroll(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Service::init(&dir.path().join("catalog")).expect("catalog");
    service
        .ca_init(
            "CN=Bench Root",
            KeyType::EcP256,
            Some("CN=Bench Issuing CA"),
        )
        .expect("CA");
    let transport = Password::new("bench");
    let mut group = c.benchmark_group("enroll");
    group.sample_size(10);
    for key_type in KeyType::all() {
        let request = EnrollRequest::new("CN=bench.example.com,O=pfxkit")
            .sans(vec![San::Dns("bench.example.com".into())])
            .key_type(*key_type);
        group.bench_function(key_type.name(), |b| {
            b.iter(|| service.enroll(None, &request, &transport).expect("enroll"))
        });
    }
    group.finish();
}

criterion_group!(benches, enroll);
criterion_main!(benches);
