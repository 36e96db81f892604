#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Issue 13, items 6–9 and the per-principal permission model: who may register stores, grant,
//! use a certificate's private key, and what one principal's grants do to another's. Each test
//! drives [`Service`] (the one place the CLI and the HTTP API ask) on a fresh catalog.

use std::path::Path;

use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::jobs::{JobOptions, NewCertificate};
use pfxkit_catalog::service::{EnrollRequest, Service};
use pfxkit_catalog::{Action, Error, Permission};

const STORE_PASSWORD: &str = "store-password";

fn catalog(dir: &Path) -> Service {
    let service = Service::init(&dir.join("catalog")).unwrap();
    service
        .ca_init("CN=Permissions Test Root", KeyType::EcP256, None)
        .unwrap();
    service
}

fn password() -> PasswordSource {
    PasswordSource::Literal(Password::new(STORE_PASSWORD))
}

fn jks(service: &Service, dir: &Path, name: &str, container: Option<&str>) -> String {
    service
        .add_store(
            None,
            StoreType::Jks,
            &dir.join(name),
            None,
            container,
            Some(&password()),
        )
        .unwrap()
        .id
}

fn enroll(service: &Service, principal: Option<&str>, subject: &str) -> i64 {
    service
        .enroll(
            principal,
            &EnrollRequest::new(subject).key_type(KeyType::EcP256),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, Error>, naming: &str) {
    match result {
        Err(Error::Forbidden(reason)) => assert!(reason.contains(naming), "{reason}"),
        other => panic!("expected Forbidden naming '{naming}', got {other:?}"),
    }
}

#[test]
fn container_grant_of_another_principal_never_removes_mine() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    service.add_container(None, "A").unwrap();
    let store = jks(&service, dir.path(), "a.jks", Some("A"));
    let record = service.catalog().store(&store).unwrap().unwrap();
    service
        .grant(None, "alice", None, Permission::Schedule)
        .unwrap();
    service
        .authorize(Some("alice"), Action::Schedule(&record))
        .unwrap();
    // Bob's grant on container A is Bob's: Alice keeps her global Schedule there.
    service
        .grant(None, "bob", Some("A"), Permission::Read)
        .unwrap();
    service
        .authorize(Some("alice"), Action::Schedule(&record))
        .unwrap();
    forbidden(
        service.authorize(Some("bob"), Action::Schedule(&record)),
        "Schedule",
    );
    // Alice's own container grant decides for her there.
    service
        .grant(None, "alice", Some("A"), Permission::Read)
        .unwrap();
    forbidden(
        service.authorize(Some("alice"), Action::Schedule(&record)),
        "Schedule",
    );
    service
        .authorize(Some("alice"), Action::ReadStore(&record))
        .unwrap();
}

#[test]
fn stores_add_needs_admin() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    service
        .grant(None, "mallory", None, Permission::Modify)
        .unwrap();
    let add = |principal| {
        service.add_store(
            principal,
            StoreType::Jks,
            &dir.path().join("victim.jks"),
            None,
            None,
            Some(&password()),
        )
    };
    forbidden(add(Some("mallory")), "admin");
    assert!(service.catalog().stores().unwrap().is_empty());
    forbidden(service.add_container(Some("mallory"), "mine"), "admin");
    service
        .grant(None, "root", None, Permission::Admin)
        .unwrap();
    add(Some("root")).unwrap();
    service.add_container(Some("root"), "ours").unwrap();
}

#[test]
fn principal_cannot_grant_itself() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    forbidden(
        service.grant(Some("mallory"), "mallory", None, Permission::Recover),
        "admin",
    );
    forbidden(
        service.grant(Some("mallory"), "friend", None, Permission::Recover),
        "admin",
    );
    service
        .grant(None, "root", None, Permission::Admin)
        .unwrap();
    forbidden(
        service.grant(Some("root"), "root", None, Permission::Recover),
        "cannot grant itself",
    );
    service
        .grant(Some("root"), "operator", None, Permission::Schedule)
        .unwrap();
    assert_eq!(service.catalog().grants("root").unwrap().len(), 1);
    // Global-only permissions are never granted on a container.
    service.add_container(None, "A").unwrap();
    assert!(matches!(
        service.grant(Some("root"), "operator", Some("A"), Permission::Admin),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn enroll_import_and_renew_need_enroll() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    let request = EnrollRequest::new("CN=x.example.com");
    forbidden(
        service.enroll(Some("mallory"), &request, &Password::new("")),
        "enroll",
    );
    service
        .grant(None, "mallory", None, Permission::Admin)
        .unwrap();
    forbidden(
        service.enroll(Some("mallory"), &request, &Password::new("")),
        "enroll",
    );
    service
        .grant(None, "alice", None, Permission::Enroll)
        .unwrap();
    let id = enroll(&service, Some("alice"), "CN=alice.example.com");
    let record = service.catalog().certificate(id).unwrap().unwrap();
    assert_eq!(record.owner.as_deref(), Some("alice"));
}

#[test]
fn deploy_needs_ownership_or_recover() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    let store = jks(&service, dir.path(), "s.jks", None);
    for p in ["alice", "mallory"] {
        service.grant(None, p, None, Permission::Schedule).unwrap();
        service.grant(None, p, None, Permission::Enroll).unwrap();
    }
    let owners = enroll(&service, None, "CN=owner.example.com");
    let alices = enroll(&service, Some("alice"), "CN=alice.example.com");
    let deploy = |principal, certificate| {
        service.deploy(
            certificate,
            std::slice::from_ref(&store),
            Some("x"),
            true,
            &JobOptions::new(None, None, Some(principal)),
        )
    };
    // Schedule on the target store alone is not enough to receive someone else's key.
    forbidden(deploy("mallory", alices), "recover");
    forbidden(deploy("mallory", owners), "recover");
    forbidden(deploy("alice", owners), "recover");
    assert!(service.catalog().jobs().unwrap().is_empty());
    assert_eq!(
        deploy("alice", alices).unwrap().successful,
        [store.as_str()]
    );
    service
        .grant(None, "mallory", None, Permission::Recover)
        .unwrap();
    assert_eq!(
        deploy("mallory", alices).unwrap().successful,
        [store.as_str()]
    );
}

#[test]
fn replace_needs_ownership_or_recover_of_the_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    let store = jks(&service, dir.path(), "s.jks", None);
    let first = enroll(&service, None, "CN=app.example.com");
    service
        .deploy(first, &[store], Some("app"), false, &JobOptions::default())
        .unwrap();
    service
        .run_jobs(pfxkit_catalog::jobs::now_ms(), &|_| {})
        .unwrap();
    let second = enroll(&service, None, "CN=app.example.com");
    service
        .grant(None, "operator", None, Permission::Schedule)
        .unwrap();
    let options = JobOptions::new(None, None, Some("operator"));
    forbidden(
        service.replace(first, NewCertificate::Certificate(second), &options),
        "recover",
    );
    service
        .grant(None, "operator", None, Permission::Recover)
        .unwrap();
    let outcome = service
        .replace(first, NewCertificate::Certificate(second), &options)
        .unwrap();
    assert_eq!(outcome.successful.len(), 1);
}

#[test]
fn same_file_is_one_store_across_containers() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    service.add_container(None, "A").unwrap();
    service.add_container(None, "B").unwrap();
    let original = jks(&service, dir.path(), "a.jks", Some("A"));
    let again = |path: &Path| {
        service.add_store(
            None,
            StoreType::Jks,
            path,
            None,
            Some("B"),
            Some(&password()),
        )
    };
    // The same path, the same file through a link, and through `..`.
    std::os::unix::fs::symlink(dir.path().join("a.jks"), dir.path().join("link.jks")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for path in [
        dir.path().join("a.jks"),
        dir.path().join("link.jks"),
        dir.path().join("sub/../a.jks"),
    ] {
        match again(&path) {
            Err(Error::Invalid(reason)) => {
                assert!(reason.contains(&original), "{reason}");
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    assert_eq!(service.catalog().stores().unwrap().len(), 1);
}

/// A store holding `first` (deployed and inventoried) and the catalog; returns the store's id.
fn deployed(service: &Service, dir: &Path, first: i64) -> String {
    let store = jks(service, dir, "r.jks", None);
    service
        .deploy(
            first,
            std::slice::from_ref(&store),
            Some("app"),
            false,
            &JobOptions::default(),
        )
        .unwrap();
    service
        .run_jobs(pfxkit_catalog::jobs::now_ms(), &|_| {})
        .unwrap();
    store
}

#[test]
fn replace_refuses_expired_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    let first = enroll(&service, None, "CN=app.example.com");
    deployed(&service, dir.path(), first);
    let short = service
        .enroll(
            None,
            &EnrollRequest::new("CN=app.example.com").days(1),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    let jobs_before = service.catalog().jobs().unwrap().len();
    // Expired by the time its jobs run.
    let in_three_days =
        pfxkit_catalog::jobs::format_time(pfxkit_catalog::jobs::now_ms() + 3 * 86_400_000);
    let refused = service.replace(
        first,
        NewCertificate::Certificate(short),
        &JobOptions::new(None, Some(&in_three_days), None),
    );
    match refused {
        Err(Error::Invalid(reason)) => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(service.catalog().jobs().unwrap().len(), jobs_before);
    // Valid now: accepted.
    service
        .replace(
            first,
            NewCertificate::Certificate(short),
            &JobOptions::default(),
        )
        .unwrap();
}

#[test]
fn replace_names_a_different_subject() {
    let dir = tempfile::tempdir().unwrap();
    let service = catalog(dir.path());
    let first = enroll(&service, None, "CN=app.example.com");
    let store = deployed(&service, dir.path(), first);
    let same = enroll(&service, None, "CN=app.example.com");
    let outcome = service
        .replace(
            first,
            NewCertificate::Certificate(same),
            &JobOptions::default(),
        )
        .unwrap();
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let other = enroll(&service, None, "CN=other.example.com");
    let outcome = service
        .replace(
            first,
            NewCertificate::Certificate(other),
            &JobOptions::default(),
        )
        .unwrap();
    assert_eq!(outcome.successful, [store.as_str()]);
    assert_eq!(outcome.warnings.len(), 1);
    assert!(
        outcome.warnings[0].contains("CN=other.example.com")
            && outcome.warnings[0].contains("CN=app.example.com"),
        "{:?}",
        outcome.warnings
    );
}
