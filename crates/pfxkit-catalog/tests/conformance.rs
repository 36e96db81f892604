//! One conformance suite for the `Catalog` trait, run against SQLite and PostgreSQL: each check
//! is a function of a `Service` (and so of its `&dyn Catalog`); `sqlite_*` and `postgres_*`
//! tests run it on each backend. The PostgreSQL tests start a throwaway server (tests/pg).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pg;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::jobs::StoreOptions;
use pfxkit_catalog::jobs::{JOB_LEASE_MS, JobOptions, JobQueue, NewCertificate, now_ms};
use pfxkit_catalog::postgres::PostgresCatalog;
use pfxkit_catalog::service::{CatalogLocation, CertificateRef, EnrollRequest, Service};
use pfxkit_catalog::{
    AgentState, Catalog, Error, JobRecord, JobResult, JobStatus, Permission, RequestKind,
};

/// The PostgreSQL schema version this build migrates to.
const SCHEMA_VERSION: usize = 7;

/// Writes a key file as `catalog init` would: 0600, or the catalog refuses it.
fn write_key(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn sqlite(dir: &Path) -> Service {
    Service::init(&dir.join("catalog")).unwrap()
}

fn postgres(server: &pg::TestPostgres, dir: &Path) -> Service {
    postgres_with_conninfo(server, dir).0
}

fn postgres_with_conninfo(server: &pg::TestPostgres, dir: &Path) -> (Service, String) {
    let conninfo = server.create_database();
    let location = CatalogLocation::parse(&conninfo, Some(&dir.join("catalog.key"))).unwrap();
    (Service::init_at(&location).unwrap(), conninfo)
}

/// Runs `check` on a fresh SQLite catalog and a fresh PostgreSQL one, and returns both answers.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[test] fn $name() { let d = tempfile::tempdir().unwrap(); super::$name(&super::sqlite(d.path()), d.path()); })*
        }
        mod postgres_backend {
            $(#[test] fn $name() {
                let Some(server) = super::pg::TestPostgres::start() else { return };
                let d = tempfile::tempdir().unwrap();
                super::$name(&super::postgres(&server, d.path()), d.path());
            })*
        }
    };
}

conformance!(
    certificates_are_recorded_once_with_their_chain_and_staged_key,
    containers_have_unique_names,
    grants_are_recorded_once_and_per_container,
    locations_are_replaced_by_each_inventory,
    claims_take_the_oldest_due_jobs_and_never_the_same_twice,
    a_stores_job_waits_while_an_older_job_of_that_store_is_open,
    a_job_whose_runner_died_is_claimed_again_after_its_lease,
    deploy_replace_renew_flow_gives_the_same_answers,
    a_certificate_is_owned_by_whoever_first_staged_its_key,
    jobs_are_read_by_id_with_their_lease_holder,
    only_a_waiting_job_is_cancelled,
    only_a_failed_job_is_retried,
    a_runner_releases_only_the_leases_it_holds,
    a_job_records_when_its_run_started_and_ended,
    renewal_policies_successors_expiring_and_history,
    users_tokens_containers_and_certificates_are_listed,
    a_store_is_removed_with_its_locations_and_jobs_but_not_while_a_job_runs,
    a_replaced_ca_no_longer_issues_but_its_certificates_stay,
    waiting_jobs_are_read_by_certificate,
    agents_are_added_once_and_their_token_is_redeemed_once,
    a_machines_claim_takes_only_its_stores_jobs_and_a_lease_finishes_once,
    an_agent_registration_without_its_token_is_refused_before_the_csr_is_read,
    one_file_is_one_store_on_each_host_until_its_store_is_removed,
    concurrent_registrations_of_one_file_make_one_store,
    the_job_queue_counts_due_leased_and_future_jobs_of_this_hosts_stores,
);

fn ca_and_enroll(service: &Service, subject: &str) -> i64 {
    if service.catalog().issuing_ca().unwrap().is_none() {
        service
            .ca_init(
                "CN=Conformance Root",
                KeyType::EcP256,
                Some("CN=Conformance Issuing"),
            )
            .unwrap();
    }
    service
        .enroll(None, &EnrollRequest::new(subject), &Password::new(""))
        .unwrap()
        .certificate_id
}

fn certificates_are_recorded_once_with_their_chain_and_staged_key(service: &Service, _: &Path) {
    let id = ca_and_enroll(service, "CN=a.example");
    let record = service.certificate(&CertificateRef::Id(id)).unwrap();
    assert!(record.has_staged_key);
    assert_eq!(record.chain.len(), 2, "intermediate and root");
    let chain = service.chain_of(&record).unwrap();
    let again = service
        .catalog()
        .add_certificate(
            &record.certificate,
            &chain,
            None,
            Some(RequestKind::Import),
            None,
        )
        .unwrap();
    assert_eq!(again.0.id, id, "same certificate, same id");
    assert!(again.1.is_some());
    let by_request = service
        .catalog()
        .certificate_by_request(again.1.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(by_request.id, id);
    for thumb in [
        record.certificate.sha1_hex(),
        record.certificate.sha256_hex().to_uppercase(),
    ] {
        assert_eq!(
            service
                .catalog()
                .certificate_by_thumbprint(&thumb)
                .unwrap()
                .unwrap()
                .id,
            id
        );
    }
    assert!(service.catalog().certificate(id + 1000).unwrap().is_none());
    assert!(
        service
            .catalog()
            .certificate_by_thumbprint("00")
            .unwrap()
            .is_none()
    );
    assert!(service.catalog().staged_key(id).unwrap().is_some());
    assert!(
        service
            .catalog()
            .staged_key(record.chain[0])
            .unwrap()
            .is_none()
    );
    assert!(service.staged_identity(&record).is_ok());
    assert_eq!(
        service
            .catalog()
            .issuing_ca()
            .unwrap()
            .unwrap()
            .certificate_id,
        record.chain[0]
    );
}

fn containers_have_unique_names(service: &Service, _: &Path) {
    let c = service.catalog().add_container("web").unwrap();
    assert_eq!(service.catalog().container_by_name("web").unwrap(), Some(c));
    assert!(matches!(
        service.catalog().add_container("web"),
        Err(Error::Invalid(_))
    ));
    assert!(service.catalog().container_by_name("db").unwrap().is_none());
}

fn grants_are_recorded_once_and_per_container(service: &Service, _: &Path) {
    let c = service.catalog().add_container("web").unwrap();
    for _ in 0..2 {
        service
            .grant(None, "alice", None, Permission::Read)
            .unwrap();
        service
            .grant(None, "alice", Some("web"), Permission::Schedule)
            .unwrap();
    }
    let mut grants: Vec<(Option<i64>, Permission)> = service
        .catalog()
        .grants("alice")
        .unwrap()
        .into_iter()
        .map(|g| (g.container_id, g.permission))
        .collect();
    grants.sort_by_key(|(c, p)| (*c, p.name()));
    assert_eq!(
        grants,
        vec![(None, Permission::Read), (Some(c.id), Permission::Schedule)]
    );
    assert!(service.catalog().container_has_grants(c.id).unwrap());
    assert!(service.catalog().grants("bob").unwrap().is_empty());
}

fn jks_stores(service: &Service, dir: &Path, n: usize) -> Vec<String> {
    let password = PasswordSource::Literal(Password::new("store-password"));
    (0..n)
        .map(|i| {
            service
                .add_store(
                    None,
                    StoreType::Jks,
                    &dir.join(format!("{i}.jks")),
                    None,
                    None,
                    Some(&password),
                )
                .unwrap()
                .id
        })
        .collect()
}

fn locations_are_replaced_by_each_inventory(service: &Service, dir: &Path) {
    let id = ca_and_enroll(service, "CN=loc.example");
    let stores = jks_stores(service, dir, 2);
    let listed: Vec<String> = service
        .catalog()
        .stores()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, stores, "stores listed in the order they were added");
    let c = service.catalog();
    c.set_locations(&stores[0], &[("a".into(), id), ("b".into(), id)])
        .unwrap();
    c.set_locations(&stores[1], &[("z".into(), id)]).unwrap();
    assert_eq!(c.locations(id).unwrap().len(), 3);
    c.set_locations(&stores[0], &[("c".into(), id)]).unwrap();
    let found: Vec<(String, String)> = c
        .locations(id)
        .unwrap()
        .into_iter()
        .map(|l| (l.store_id, l.alias))
        .collect();
    let mut expected = vec![
        (stores[0].clone(), "c".to_string()),
        (stores[1].clone(), "z".to_string()),
    ];
    expected.sort();
    assert_eq!(found, expected);
}

fn deploy(service: &Service, certificate: i64, stores: &[String], alias: &str) {
    let outcome = service
        .deploy(
            certificate,
            stores,
            Some(alias),
            true,
            &JobOptions::default(),
        )
        .unwrap();
    assert_eq!(outcome.successful.len(), stores.len());
}

fn ids(jobs: &[JobRecord]) -> Vec<i64> {
    jobs.iter().map(|j| j.id).collect()
}

fn claims_take_the_oldest_due_jobs_and_never_the_same_twice(service: &Service, dir: &Path) {
    let cert = ca_and_enroll(service, "CN=claim.example");
    let stores = jks_stores(service, dir, 5);
    deploy(service, cert, &stores, "a");
    let c = service.catalog();
    let now = now_ms();
    let all = ids(&c.jobs().unwrap());
    let first = c
        .claim_due_jobs(now, now - JOB_LEASE_MS, 2, "runner")
        .unwrap();
    let second = c
        .claim_due_jobs(now, now - JOB_LEASE_MS, 10, "runner")
        .unwrap();
    assert_eq!(ids(&first), all[..2]);
    assert_eq!(ids(&second), all[2..]);
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|j| j.status == JobStatus::InProcess)
    );
    assert!(
        c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "runner")
            .unwrap()
            .is_empty()
    );
    c.finish_job(all[0], JobStatus::Completed, JobResult::Success, "done")
        .unwrap();
    let listed = c.jobs().unwrap();
    assert_eq!(listed[0].status, JobStatus::Completed);
    assert_eq!(listed[0].result, Some(JobResult::Success));
    assert_eq!(listed[0].message.as_deref(), Some("done"));
    // A job scheduled later is not due yet.
    let later = service
        .deploy(
            cert,
            &stores[..1],
            Some("later"),
            true,
            &JobOptions::new(None, Some("2999-01-01T00:00:00Z"), None),
        )
        .unwrap();
    assert_eq!(later.successful.len(), 1);
    assert!(
        c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "runner")
            .unwrap()
            .is_empty()
    );
}

fn a_stores_job_waits_while_an_older_job_of_that_store_is_open(service: &Service, dir: &Path) {
    let cert = ca_and_enroll(service, "CN=order.example");
    let stores = jks_stores(service, dir, 2);
    deploy(service, cert, &stores, "a");
    deploy(service, cert, &stores, "b");
    let c = service.catalog();
    let now = now_ms();
    let all = c.jobs().unwrap();
    let first = c.claim_due_jobs(now, now - JOB_LEASE_MS, 2, "r1").unwrap();
    assert_eq!(ids(&first), ids(&all[..2]), "one job per store");
    assert!(
        c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r2")
            .unwrap()
            .is_empty(),
        "the second jobs wait while the first are leased"
    );
    c.finish_job(first[0].id, JobStatus::Completed, JobResult::Success, "")
        .unwrap();
    let next = c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r2").unwrap();
    assert_eq!(
        ids(&next),
        vec![all[2].id],
        "only the finished store moves on"
    );
    // One claim takes a store's due jobs in order when nothing older blocks them.
    c.finish_job(first[1].id, JobStatus::Completed, JobResult::Success, "")
        .unwrap();
    deploy(service, cert, &stores, "c");
    let chained = c
        .claim_due_jobs(now_ms(), now - JOB_LEASE_MS, 10, "r3")
        .unwrap();
    let all = c.jobs().unwrap();
    assert_eq!(ids(&chained), vec![all[3].id, all[5].id]);
    assert!(
        chained
            .iter()
            .all(|j| j.claimed_by.as_deref() == Some("r3"))
    );
}

fn a_job_whose_runner_died_is_claimed_again_after_its_lease(service: &Service, dir: &Path) {
    let cert = ca_and_enroll(service, "CN=lease.example");
    let stores = jks_stores(service, dir, 1);
    deploy(service, cert, &stores, "a");
    let c = service.catalog();
    let now = now_ms();
    let claimed = c
        .claim_due_jobs(now, now - JOB_LEASE_MS, 10, "runner")
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "runner")
            .unwrap()
            .is_empty()
    );
    let later = now + JOB_LEASE_MS + 60_000;
    let again = c
        .claim_due_jobs(later, later - JOB_LEASE_MS, 10, "runner")
        .unwrap();
    assert_eq!(ids(&again), ids(&claimed));
    assert_eq!(again[0].claimed_by.as_deref(), Some("runner"));
    // Given back by its runner, the job runs to completion.
    c.release_jobs(&ids(&again), "runner").unwrap();
    let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].result, Some(JobResult::Success));
}

/// What a flow answered, stripped of ids and GUIDs that differ between backends.
fn flow(service: &Service, dir: &Path) -> Vec<String> {
    let mut answers = Vec::new();
    let first = ca_and_enroll(service, "CN=flow.example");
    let stores = jks_stores(service, dir, 3);
    let index: BTreeMap<String, usize> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i))
        .collect();
    deploy(service, first, &stores, "web");
    let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
    answers.push(format!(
        "deploy ran {:?}",
        ran.iter()
            .map(|j| (index[&j.job.store_id], j.result, j.message.clone()))
            .collect::<Vec<_>>()
    ));
    let renewed = service
        .renew(None, &CertificateRef::Id(first), &Password::new(""))
        .unwrap();
    let outcome = service
        .replace(
            first,
            NewCertificate::Request(renewed.request_id),
            &JobOptions::default(),
        )
        .unwrap();
    let mut succeeded: Vec<usize> = outcome.successful.iter().map(|s| index[s]).collect();
    succeeded.sort_unstable();
    answers.push(format!(
        "replace: ok {succeeded:?}, failed {}",
        outcome.failed.len()
    ));
    let ran = service.run_jobs(now_ms(), &|_| {}).unwrap();
    // Replace schedules in location order (by store GUID), so compare per store.
    let mut ran: Vec<_> = ran
        .iter()
        .map(|j| (index[&j.job.store_id], j.result, j.message.clone()))
        .collect();
    ran.sort_by_key(|r| r.0);
    answers.push(format!("replace ran {ran:?}"));
    let locations: HashSet<(usize, String)> = service
        .catalog()
        .locations(renewed.certificate_id)
        .unwrap()
        .into_iter()
        .map(|l| (index[&l.store_id], l.alias))
        .collect();
    let mut locations: Vec<_> = locations.into_iter().collect();
    locations.sort();
    answers.push(format!("renewed is at {locations:?}"));
    answers.push(format!(
        "old is at {:?}",
        service.catalog().locations(first).unwrap()
    ));
    let reports = service.inventory(None).unwrap();
    answers.push(format!(
        "inventory {:?}",
        reports
            .iter()
            .map(|r| (index[&r.store_id], r.result, r.entries))
            .collect::<Vec<_>>()
    ));
    // Unknown ids are request errors on both.
    answers.push(format!(
        "{:?}",
        service
            .replace(
                first,
                NewCertificate::Certificate(99_999),
                &JobOptions::default()
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    ));
    answers
}

fn deploy_replace_renew_flow_gives_the_same_answers(service: &Service, dir: &Path) {
    let here = flow(service, dir);
    // The reference: the same flow on a fresh SQLite catalog.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = flow(&sqlite(reference_dir.path()), reference_dir.path());
    assert_eq!(here, reference);
    assert!(here[0].contains("Success"), "{here:?}");
}

fn a_certificate_is_owned_by_whoever_first_staged_its_key(service: &Service, _: &Path) {
    let id = ca_and_enroll(service, "CN=owned.example");
    let record = service.certificate(&CertificateRef::Id(id)).unwrap();
    assert_eq!(record.owner, None, "the catalog's owner enrolled it");
    let c = service.catalog();
    // The intermediate has no staged key: the first to stage one owns it.
    let intermediate = c.certificate(record.chain[0]).unwrap().unwrap();
    let root = c.certificate(record.chain[1]).unwrap().unwrap();
    assert_eq!(intermediate.owner, None);
    let (staged, _) = c
        .add_certificate(
            &intermediate.certificate,
            std::slice::from_ref(&root.certificate),
            Some(b"sealed key bytes"),
            None,
            Some("alice"),
        )
        .unwrap();
    assert_eq!(staged.id, intermediate.id);
    assert_eq!(staged.owner.as_deref(), Some("alice"));
    assert!(staged.has_staged_key);
    // Staging it again keeps the first owner; recording it without a key changes nothing.
    let (again, _) = c
        .add_certificate(
            &intermediate.certificate,
            &[],
            Some(b"sealed key bytes"),
            None,
            Some("bob"),
        )
        .unwrap();
    assert_eq!(again.owner.as_deref(), Some("alice"));
    let (root_again, _) = c
        .add_certificate(&root.certificate, &[], None, None, Some("carol"))
        .unwrap();
    assert_eq!(root_again.owner, None);
    assert_eq!(
        c.certificate_by_thumbprint(&intermediate.certificate.sha256_hex())
            .unwrap()
            .unwrap()
            .owner
            .as_deref(),
        Some("alice")
    );
}

/// Two stores, one job each ("a"), then one more each ("b"): returns the four jobs' ids.
fn four_jobs(service: &Service, dir: &Path, subject: &str) -> Vec<i64> {
    let cert = ca_and_enroll(service, subject);
    let stores = jks_stores(service, dir, 2);
    deploy(service, cert, &stores, "a");
    deploy(service, cert, &stores, "b");
    ids(&service.catalog().jobs().unwrap())
}

fn jobs_are_read_by_id_with_their_lease_holder(service: &Service, dir: &Path) {
    let all = four_jobs(service, dir, "CN=byid.example");
    let c = service.catalog();
    let waiting = c.job(all[1]).unwrap().unwrap();
    assert_eq!(waiting.id, all[1]);
    assert_eq!(waiting.status, JobStatus::Waiting);
    assert_eq!((waiting.claimed_by, waiting.claimed_ms), (None, None));
    assert_eq!(waiting.job.alias.as_deref(), Some("a"));
    assert!(c.job(all[3] + 1000).unwrap().is_none());
    let before = now_ms();
    let claimed = c
        .claim_due_jobs(before, before - JOB_LEASE_MS, 1, "runner-7")
        .unwrap();
    assert_eq!(ids(&claimed), vec![all[0]]);
    let leased = c.job(all[0]).unwrap().unwrap();
    assert_eq!(leased.status, JobStatus::InProcess);
    assert_eq!(leased.claimed_by.as_deref(), Some("runner-7"));
    // The lease starts on the real clock (PostgreSQL's), not at the `now` asked about.
    let started = leased.claimed_ms.unwrap();
    assert!((started - before).abs() < 60_000, "{started} vs {before}");
    assert_eq!(claimed[0].claimed_by.as_deref(), Some("runner-7"));
    // A runner asking about the future does not take over a live lease.
    let future = before + 10 * JOB_LEASE_MS;
    let other = c
        .claim_due_jobs(future, before - JOB_LEASE_MS, 10, "runner-8")
        .unwrap();
    assert_eq!(
        ids(&other),
        vec![all[1], all[3]],
        "store 0 waits for runner-7"
    );
    c.finish_job(all[0], JobStatus::Completed, JobResult::Success, "done")
        .unwrap();
    let done = c.job(all[0]).unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.message.as_deref(), Some("done"));
    assert_eq!(
        (done.claimed_by, done.claimed_ms),
        (None, None),
        "no lease once finished"
    );
}

/// JobHistory's OperationStart and OperationEnd: the start is kept after the lease ends, the
/// end is recorded by every completion (a cancellation included), and a retry clears both.
fn a_job_records_when_its_run_started_and_ended(service: &Service, dir: &Path) {
    let all = four_jobs(service, dir, "CN=times.example");
    let c = service.catalog();
    let waiting = c.job(all[0]).unwrap().unwrap();
    assert_eq!((waiting.started_ms, waiting.finished_ms), (None, None));
    let before = now_ms();
    let claimed = c
        .claim_due_jobs(before, before - JOB_LEASE_MS, 2, "r1")
        .unwrap();
    assert_eq!(ids(&claimed), vec![all[0], all[1]]);
    let running = c.job(all[0]).unwrap().unwrap();
    let started = running.started_ms.expect("a running job has started");
    // PostgreSQL stamps with its own clock: same host here, so close to ours.
    assert!((started - before).abs() < 60_000, "{started} vs {before}");
    assert_eq!(running.finished_ms, None, "still running");
    c.finish_job(all[0], JobStatus::Completed, JobResult::Success, "ok")
        .unwrap();
    c.finish_job(all[1], JobStatus::Completed, JobResult::Failure, "no")
        .unwrap();
    let done = c.job(all[0]).unwrap().unwrap();
    assert_eq!(
        done.started_ms,
        Some(started),
        "the start outlives the lease"
    );
    let ended = done.finished_ms.expect("a completed job has ended");
    assert!(ended >= started, "{ended} < {started}");
    assert_eq!(done.claimed_ms, None, "no lease once finished");
    // The listing reads the same columns as the single read.
    let listed = c.jobs().unwrap();
    let same = listed.iter().find(|j| j.id == all[0]).unwrap();
    assert_eq!(
        (same.started_ms, same.finished_ms),
        (Some(started), Some(ended))
    );
    // A cancelled job ended without starting.
    assert!(c.cancel_job(all[3], "cancelled").unwrap());
    let cancelled = c.job(all[3]).unwrap().unwrap();
    assert_eq!(cancelled.started_ms, None);
    assert!(cancelled.finished_ms.is_some());
    // A retried job waits again, with neither time.
    assert!(c.retry_job(all[1], now_ms()).unwrap());
    let retried = c.job(all[1]).unwrap().unwrap();
    assert_eq!((retried.started_ms, retried.finished_ms), (None, None));
}

fn only_a_waiting_job_is_cancelled(service: &Service, dir: &Path) {
    let all = four_jobs(service, dir, "CN=cancel.example");
    let c = service.catalog();
    let now = now_ms();
    let claimed = c.claim_due_jobs(now, now - JOB_LEASE_MS, 1, "r1").unwrap();
    assert_eq!(ids(&claimed), vec![all[0]]);
    assert!(!c.cancel_job(all[0], "cancelled").unwrap(), "leased");
    assert!(c.cancel_job(all[1], "cancelled by alice").unwrap());
    assert!(!c.cancel_job(all[1], "twice").unwrap(), "already finished");
    assert!(!c.cancel_job(all[3] + 1000, "unknown").unwrap());
    let cancelled = c.job(all[1]).unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Completed);
    assert_eq!(cancelled.result, Some(JobResult::Failure));
    assert_eq!(cancelled.message.as_deref(), Some("cancelled by alice"));
    assert_eq!(c.job(all[0]).unwrap().unwrap().status, JobStatus::InProcess);
    // A cancelled job no longer holds back its store's later job.
    let next = c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r2").unwrap();
    assert_eq!(ids(&next), vec![all[3]]);
}

fn only_a_failed_job_is_retried(service: &Service, dir: &Path) {
    let all = four_jobs(service, dir, "CN=retry.example");
    let c = service.catalog();
    let now = now_ms();
    let claimed = c.claim_due_jobs(now, now - JOB_LEASE_MS, 2, "r1").unwrap();
    assert_eq!(ids(&claimed), vec![all[0], all[1]]);
    assert!(!c.retry_job(all[0], now).unwrap(), "leased");
    assert!(!c.retry_job(all[2], now).unwrap(), "waiting");
    c.finish_job(all[0], JobStatus::Completed, JobResult::Success, "ok")
        .unwrap();
    c.finish_job(
        all[1],
        JobStatus::Completed,
        JobResult::Failure,
        "disk full",
    )
    .unwrap();
    assert!(!c.retry_job(all[0], now).unwrap(), "succeeded");
    let later = now + 3_600_000;
    assert!(c.retry_job(all[1], later).unwrap());
    assert!(!c.retry_job(all[1], later).unwrap(), "waiting again");
    let retried = c.job(all[1]).unwrap().unwrap();
    assert_eq!(retried.status, JobStatus::Waiting);
    assert_eq!((retried.result, retried.message), (None, None));
    assert_eq!(retried.job.scheduled_ms, later);
    // Now scheduled after store 1's job "b", it runs after it, when due.
    let next = c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r2").unwrap();
    assert_eq!(ids(&next), vec![all[2], all[3]]);
    c.finish_job(all[3], JobStatus::Completed, JobResult::Success, "")
        .unwrap();
    assert!(
        c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r2")
            .unwrap()
            .is_empty()
    );
    let due = c
        .claim_due_jobs(later, now - JOB_LEASE_MS, 10, "r2")
        .unwrap();
    assert_eq!(ids(&due), vec![all[1]]);
}

fn a_runner_releases_only_the_leases_it_holds(service: &Service, dir: &Path) {
    let all = four_jobs(service, dir, "CN=release.example");
    let c = service.catalog();
    let now = now_ms();
    let claimed = c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r1").unwrap();
    assert_eq!(
        ids(&claimed),
        all,
        "each store's jobs in order, in one claim"
    );
    c.release_jobs(&all, "r2").unwrap();
    assert!(
        c.jobs()
            .unwrap()
            .iter()
            .all(|j| j.status == JobStatus::InProcess && j.claimed_by.as_deref() == Some("r1")),
        "another runner's release changes nothing"
    );
    c.finish_job(all[0], JobStatus::Completed, JobResult::Success, "")
        .unwrap();
    c.release_jobs(&all, "r1").unwrap();
    let jobs = c.jobs().unwrap();
    assert_eq!(
        jobs[0].status,
        JobStatus::Completed,
        "a finished job stays finished"
    );
    for j in &jobs[1..] {
        assert_eq!(j.status, JobStatus::Waiting);
        assert_eq!((j.claimed_by.as_deref(), j.claimed_ms), (None, None));
    }
    c.release_jobs(&[], "r1").unwrap();
    let again = c.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "r2").unwrap();
    assert_eq!(ids(&again), all[1..]);
    assert!(again.iter().all(|j| j.claimed_by.as_deref() == Some("r2")));
}

fn renewal_policies_successors_expiring_and_history(service: &Service, dir: &Path) {
    const DAY_MS: i64 = 86_400_000;
    let cert = ca_and_enroll(service, "CN=renewal.example");
    let stores = jks_stores(service, dir, 2);
    deploy(service, cert, &stores, "web");
    let now = now_ms();
    assert_eq!(service.run_jobs(now, &|_| {}).unwrap().len(), 2);
    assert!(service.expiring(now, 0).unwrap().is_empty());
    let soon = service.expiring(now, 400 * 86_400).unwrap();
    assert_eq!(soon.len(), 1, "only located certificates");
    assert_eq!(soon[0].expiring.record.id, cert);
    assert_eq!(soon[0].expiring.locations, 2);
    assert_eq!(soon[0].expiring.successor, None);

    // Policies: one per scope, replaced by the next, global first.
    for permission in [Permission::Admin, Permission::Enroll, Permission::Schedule] {
        service.grant(None, "ops", None, permission).unwrap();
    }
    service.catalog().add_container("web").unwrap();
    service
        .set_policy(None, None, 30 * 86_400, "ops", None)
        .unwrap();
    let literal = PasswordSource::Literal(Password::new("policy-entry"));
    service
        .set_policy(None, Some("web"), 10 * 86_400, "ops", Some(&literal))
        .unwrap();
    let global = service
        .set_policy(None, None, 60 * 86_400, "ops", None)
        .unwrap();
    let policies = service.policies().unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0].container_id, None);
    assert_eq!(policies[0].id, global.id);
    assert_eq!(policies[0].renew_before_secs, 60 * 86_400);
    assert!(policies[1].container_id.is_some());
    assert_ne!(
        format!("{:?}", policies[1].entry_password),
        format!("{:?}", pfxkit_catalog::StorePasswordRecord::None),
        "the entry password is kept (sealed)"
    );
    service.remove_policy(None, Some("web")).unwrap();
    assert!(matches!(
        service.remove_policy(None, Some("web")),
        Err(Error::NotFound(_))
    ));
    assert_eq!(service.policies().unwrap().len(), 1);

    // Nothing is due yet; inside the window the policy renews and replaces, once.
    assert!(service.renew_due(now).unwrap().is_empty());
    let late = now + 380 * DAY_MS;
    let decided = service.renew_due(late).unwrap();
    assert_eq!(decided.len(), 1, "{decided:?}");
    let decision = &decided[0];
    assert_eq!(decision.certificate_id, cert);
    assert_eq!(decision.policy_id, global.id);
    assert_eq!(decision.principal, "ops");
    assert_eq!(
        decision.outcome,
        pfxkit_catalog::RenewalOutcome::Renewed,
        "{decision:?}"
    );
    let successor = decision.successor_id.unwrap();
    assert_eq!(service.catalog().successor(cert).unwrap(), Some(successor));
    assert_eq!(service.catalog().successor(successor).unwrap(), None);
    assert_eq!(decision.stores.len(), 2);
    assert!(decision.stores.iter().all(|s| s.scheduled));
    assert!(service.renew_due(late).unwrap().is_empty(), "renewed once");
    let history = service.policy_history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, decision.id);
    assert_eq!(history[0].successor_id, Some(successor));
    let mut recorded: Vec<String> = history[0]
        .stores
        .iter()
        .map(|s| s.store_id.clone())
        .collect();
    recorded.sort();
    let mut expected = stores.clone();
    expected.sort();
    assert_eq!(recorded, expected);
    let soon = service.expiring(now, 400 * 86_400).unwrap();
    assert_eq!(soon[0].expiring.successor, Some(successor));

    // A policy never renews a renewed certificate again; by hand it may.
    let record = service.certificate(&CertificateRef::Id(cert)).unwrap();
    let chain = service.chain_of(&record).unwrap();
    let c = service.catalog();
    assert!(
        c.record_renewal(
            cert,
            &record.certificate,
            &chain,
            b"sealed",
            Some(global.id),
            None
        )
        .unwrap()
        .is_none()
    );
    let by_hand = service
        .renew(None, &CertificateRef::Id(cert), &Password::new(""))
        .unwrap();
    assert_eq!(c.successor(cert).unwrap(), Some(by_hand.certificate_id));
    assert!(by_hand.certificate_id > successor);
}

fn users_tokens_containers_and_certificates_are_listed(service: &Service, _: &Path) {
    let c = service.catalog();
    c.add_user("bob", "$argon2id$bob").unwrap();
    c.add_user("alice", "$argon2id$alice").unwrap();
    assert!(matches!(c.add_user("bob", "x"), Err(Error::Invalid(_))));
    assert_eq!(c.users().unwrap(), vec!["alice", "bob"]);
    assert_eq!(
        c.password_hash("bob").unwrap().as_deref(),
        Some("$argon2id$bob")
    );
    assert_eq!(c.password_hash("carol").unwrap(), None);
    let t1 = c.add_token("bob", "aa11", Some(42)).unwrap();
    let t2 = c.add_token("bob", "bb22", None).unwrap();
    assert!(matches!(
        c.add_token("carol", "cc33", None),
        Err(Error::NotFound(_))
    ));
    let token = c.token("aa11").unwrap().unwrap();
    assert_eq!(
        (token.id, token.principal.as_str(), token.expires_ms),
        (t1, "bob", Some(42))
    );
    assert!(c.revoke_token(t1).unwrap());
    assert!(!c.revoke_token(t1).unwrap());
    assert!(c.token("aa11").unwrap().is_none());
    assert!(c.remove_user("bob").unwrap());
    assert!(!c.remove_user("bob").unwrap());
    assert!(
        c.token("bb22").unwrap().is_none(),
        "token {t2} went with its user"
    );
    let web = c.add_container("web").unwrap();
    let db = c.add_container("db").unwrap();
    assert_eq!(c.containers().unwrap(), vec![web, db]);
    let id = ca_and_enroll(service, "CN=listed.example");
    let all: Vec<i64> = c.certificates().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(all.len(), 3, "root, intermediate, leaf");
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert!(all.contains(&id));
}

// PostgreSQL-only behaviour.

#[test]
fn postgres_catalog_init_from_two_hosts_at_once_migrates_once() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let conninfo = server.create_database();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("catalog.key");
    // The first init makes the key; then eight "hosts" given the same key file init at once.
    Service::init_at(&CatalogLocation::parse(&conninfo, Some(&key)).unwrap()).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    Service::init_at(&CatalogLocation::parse(&conninfo, Some(&key)).unwrap())
                        .map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let catalog = PostgresCatalog::connect(&conninfo).unwrap();
    assert_eq!(catalog.schema_version().unwrap(), SCHEMA_VERSION);
    let mut admin = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let applied: i64 = admin
        .query_one("SELECT count(*) FROM pfxkit_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, i64::try_from(SCHEMA_VERSION).unwrap());
}

#[test]
fn postgres_fresh_databases_are_initialised_concurrently_without_error() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let conninfo = server.create_database();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("catalog.key");
    // Two hosts initialising an empty database at the same instant with the same key file.
    write_key(&key, &[7u8; 32]);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            Service::init_at(&CatalogLocation::parse(&conninfo, Some(&key)).unwrap()).map(|_| ())
        });
        let b = s.spawn(|| {
            Service::init_at(&CatalogLocation::parse(&conninfo, Some(&key)).unwrap()).map(|_| ())
        });
        a.join().unwrap().unwrap();
        b.join().unwrap().unwrap();
    });
}

#[test]
fn postgres_catalog_refuses_another_catalogs_key() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let conninfo = server.create_database();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("catalog.key");
    Service::init_at(&CatalogLocation::parse(&conninfo, Some(&key)).unwrap()).unwrap();
    let wrong = dir.path().join("other.key");
    write_key(&wrong, &[1u8; 32]);
    let location = CatalogLocation::parse(&conninfo, Some(&wrong)).unwrap();
    for result in [Service::open_at(&location), Service::init_at(&location)] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(err.to_string().contains("not the key"), "{err}");
    }
}

#[test]
fn postgres_catalog_needs_init_and_a_key_file() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let conninfo = server.create_database();
    assert!(matches!(
        CatalogLocation::parse(&conninfo, None),
        Err(Error::Invalid(_))
    ));
    let err = PostgresCatalog::connect(&conninfo).unwrap_err();
    assert!(err.to_string().contains("catalog init"), "{err}");
}

#[test]
fn postgres_unreachable_server_is_unavailable_and_the_password_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let conninfo = format!(
        "host={} port=1 user=u password=hunter2-secret dbname=x connect_timeout=2",
        dir.path().display()
    );
    let err = PostgresCatalog::connect(&conninfo).unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let location = CatalogLocation::parse(&conninfo, Some(&dir.path().join("k"))).unwrap();
    assert!(!format!("{location:?}").contains("hunter2"));
    let malformed = PostgresCatalog::connect("postgres://u:hunter2-secret@[bad").unwrap_err();
    assert!(!malformed.to_string().contains("hunter2"), "{malformed}");
}

#[test]
fn postgres_completion_after_a_lease_takeover_is_refused_and_recorded() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, conninfo) = postgres_with_conninfo(&server, dir.path());
    let cert = ca_and_enroll(&service, "CN=takeover.example");
    let stores = jks_stores(&service, dir.path(), 1);
    deploy(&service, cert, &stores, "a");
    // Runner A claims, then stalls past its lease; runner B (another process) takes over.
    let a = PostgresCatalog::connect(&conninfo).unwrap();
    let b = PostgresCatalog::connect(&conninfo).unwrap();
    let now = now_ms();
    let claimed = a.claim_due_jobs(now, now - JOB_LEASE_MS, 10, "a").unwrap();
    let later = now + JOB_LEASE_MS + 60_000;
    let taken = b
        .claim_due_jobs(later, later - JOB_LEASE_MS, 10, "b")
        .unwrap();
    assert_eq!(ids(&taken), ids(&claimed));
    assert_eq!(taken[0].claimed_by.as_deref(), Some("b"));
    // A's release does not give back B's lease.
    a.release_jobs(&ids(&claimed), "a").unwrap();
    let job = b.job(claimed[0].id).unwrap().unwrap();
    assert_eq!(job.status, JobStatus::InProcess);
    assert_eq!(job.claimed_by.as_deref(), Some("b"));
    let err = a
        .finish_job(
            claimed[0].id,
            JobStatus::Completed,
            JobResult::Failure,
            "stale",
        )
        .unwrap_err();
    assert!(err.to_string().contains("taken over"), "{err}");
    assert_eq!(
        a.refusals(claimed[0].id).unwrap(),
        vec![(1, 2, "stale".to_string())]
    );
    b.finish_job(taken[0].id, JobStatus::Completed, JobResult::Success, "ok")
        .unwrap();
    let job = &b.jobs().unwrap()[0];
    assert_eq!(job.result, Some(JobResult::Success));
    assert_eq!(job.message.as_deref(), Some("ok"));
}

#[test]
fn postgres_dump_holds_no_password_or_key_bytes() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, conninfo) = postgres_with_conninfo(&server, dir.path());
    let cert = ca_and_enroll(&service, "CN=dump.example");
    let store_password = "dump-store-password-4711";
    let entry_password = Password::new("dump-entry-password-0815");
    let store = service
        .add_store(
            None,
            StoreType::Jks,
            &dir.path().join("d.jks"),
            None,
            None,
            Some(&PasswordSource::Literal(Password::new(store_password))),
        )
        .unwrap();
    service
        .deploy(
            cert,
            &[store.id],
            Some("a"),
            true,
            &JobOptions::new(Some(&entry_password), None, None),
        )
        .unwrap();
    let dump = server.tool("pg_dump", &["-d", &conninfo]);
    assert!(dump.len() > 1000, "the dump holds the catalog");
    let key = std::fs::read(dir.path().join("catalog.key")).unwrap();
    let record = service.certificate(&CertificateRef::Id(cert)).unwrap();
    let identity = service.staged_identity(&record).unwrap();
    let secrets: Vec<Vec<u8>> = vec![
        store_password.as_bytes().to_vec(),
        b"dump-entry-password-0815".to_vec(),
        key.clone(),
        hex(&key).into_bytes(),
        identity.key().expose_pkcs8_der().to_vec(),
        hex(identity.key().expose_pkcs8_der()).into_bytes(),
    ];
    for secret in &secrets {
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_slice()),
            "the dump leaks a secret"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn catalog_location_tells_directories_from_postgres_connection_strings() {
    let key = Path::new("/etc/pfxkit/catalog.key");
    for pg in [
        "postgres://u@db/pfxkit",
        "postgresql://u:secret@db:5433/pfxkit",
        "host=/run/postgresql dbname=pfxkit",
        "dbname=pfxkit",
    ] {
        assert!(
            matches!(
                CatalogLocation::parse(pg, Some(key)).unwrap(),
                CatalogLocation::Postgres { .. }
            ),
            "{pg}"
        );
        assert!(
            matches!(CatalogLocation::parse(pg, None), Err(Error::Invalid(_))),
            "{pg}"
        );
    }
    for dir in [
        "./pfxkit-catalog",
        "/var/lib/pfxkit",
        "postgres",
        "my host=dir",
    ] {
        assert!(
            matches!(
                CatalogLocation::parse(dir, None).unwrap(),
                CatalogLocation::Directory(_)
            ),
            "{dir}"
        );
        assert!(
            matches!(
                CatalogLocation::parse(dir, Some(key)),
                Err(Error::Invalid(_))
            ),
            "{dir}"
        );
    }
    let described = CatalogLocation::parse("postgresql://u:secret@db:5433/pfxkit", Some(key))
        .unwrap()
        .describe();
    assert_eq!(described, "PostgreSQL database 'pfxkit' on db");
}

fn a_store_is_removed_with_its_locations_and_jobs_but_not_while_a_job_runs(
    service: &Service,
    dir: &Path,
) {
    let cert = ca_and_enroll(service, "CN=remove.example");
    let stores = jks_stores(service, dir, 2);
    deploy(service, cert, &stores, "a");
    let c = service.catalog();
    c.set_locations(&stores[0], &[("a".into(), cert)]).unwrap();
    c.set_locations(&stores[1], &[("a".into(), cert)]).unwrap();
    let now = now_ms();
    // The first store's job is running: removing that store is refused and changes nothing.
    let claimed = c
        .claim_due_jobs(now, now - JOB_LEASE_MS, 1, "runner")
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let busy = claimed[0].job.store_id.clone();
    let idle = stores.iter().find(|s| **s != busy).unwrap().clone();
    let refused = service.remove_store(&busy).unwrap_err();
    assert!(refused.to_string().contains("running"), "{refused}");
    assert_eq!(c.stores().unwrap().len(), 2);
    assert_eq!(c.jobs().unwrap().len(), 2);
    // The other store goes with its waiting job and its location, and only those.
    assert_eq!(service.remove_store(&idle).unwrap().id, idle);
    let left: Vec<String> = c.stores().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(left, vec![busy.clone()]);
    assert!(c.jobs().unwrap().iter().all(|j| j.job.store_id == busy));
    assert!(
        c.locations(cert)
            .unwrap()
            .iter()
            .all(|l| l.store_id == busy)
    );
    // Removing it again: not found, nothing else touched.
    assert!(service.remove_store(&idle).is_err());
    assert!(!c.remove_store(&idle).unwrap());
    assert_eq!(c.stores().unwrap().len(), 1);
}

fn a_replaced_ca_no_longer_issues_but_its_certificates_stay(service: &Service, _: &Path) {
    let before = ca_and_enroll(service, "CN=old-ca.example");
    let old_issuer = service.ca().unwrap().issuing.id;
    let replaced = service
        .replace_ca("CN=Second Root", KeyType::EcP256, None)
        .unwrap();
    assert_eq!(replaced.replaced.len(), 2, "root and intermediate retired");
    let info = service.ca().unwrap();
    assert_ne!(info.issuing.id, old_issuer);
    assert_eq!(info.issuing.certificate.subject(), "CN=Second Root");
    let after = service
        .enroll(
            None,
            &EnrollRequest::new("CN=new-ca.example"),
            &Password::new(""),
        )
        .unwrap()
        .certificate_id;
    let issued = service.certificate(&CertificateRef::Id(after)).unwrap();
    assert_eq!(issued.certificate.issuer(), "CN=Second Root");
    // The old CA's certificate and what it issued are still recorded.
    assert!(service.certificate(&CertificateRef::Id(before)).is_ok());
    assert!(service.certificate(&CertificateRef::Id(old_issuer)).is_ok());
    // A second replacement retires only the second CA.
    let again = service
        .replace_ca("CN=Third Root", KeyType::EcP256, None)
        .unwrap();
    assert_eq!(again.replaced.len(), 1);
    assert_eq!(again.replaced[0].subject(), "CN=Second Root");
}

/// Threat to exactly-once and to order: runners on several hosts claiming at the same moment.
/// Eight claimers, each its own connection, race over 30 stores × 4 jobs; a claimer finishes
/// what it claimed before claiming again. Every job is claimed once, and within a store the
/// claims come in job order (a store's job is never claimed while an older one is open).
#[test]
fn postgres_concurrent_claimers_take_each_job_once_and_each_stores_jobs_in_order() {
    use std::sync::{Arc, Mutex};
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, conninfo) = postgres_with_conninfo(&server, dir.path());
    let stores = jks_stores(&service, dir.path(), 30);
    for n in 0..4 {
        let cert = ca_and_enroll(&service, &format!("CN=race-{n}.example"));
        deploy(&service, cert, &stores, "a");
    }
    let jobs = service.catalog().jobs().unwrap();
    assert_eq!(jobs.len(), 120);
    let store_of: BTreeMap<i64, String> = jobs
        .iter()
        .map(|j| (j.id, j.job.store_id.clone()))
        .collect();
    let log: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let catalog = PostgresCatalog::connect(&conninfo).unwrap();
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let holder = format!("runner-{n}");
                loop {
                    let now = now_ms();
                    let claimed = catalog
                        .claim_due_jobs(now, now - JOB_LEASE_MS, 3, &holder)
                        .unwrap();
                    if claimed.is_empty() {
                        // Nothing claimable now; done once no job is open at all.
                        let open = catalog
                            .jobs()
                            .unwrap()
                            .iter()
                            .any(|j| j.status != JobStatus::Completed);
                        if !open {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    log.lock()
                        .unwrap()
                        .extend(claimed.iter().map(|j| (j.job.store_id.clone(), j.id)));
                    for j in &claimed {
                        catalog
                            .finish_job(j.id, JobStatus::Completed, JobResult::Success, "ok")
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for c in claimers {
        c.join().unwrap();
    }
    let log = log.lock().unwrap();
    let claimed: Vec<i64> = log.iter().map(|(_, id)| *id).collect();
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 120, "every job claimed");
    assert_eq!(unique.len(), 120, "no job claimed twice");
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (store, id) in log.iter() {
        assert_eq!(&store_of[id], store);
        if let Some(prev) = last.insert(store.as_str(), *id) {
            assert!(prev < *id, "store {store}: job {id} claimed after {prev}");
        }
    }
}

fn waiting_jobs_are_read_by_certificate(service: &Service, dir: &Path) {
    let a = ca_and_enroll(service, "CN=waiting-a.example");
    let b = ca_and_enroll(service, "CN=waiting-b.example");
    let stores = jks_stores(service, dir, 2);
    deploy(service, a, &stores, "a");
    deploy(service, b, &stores[..1], "b");
    let c = service.catalog();
    let of_a = c.waiting_jobs_of_certificate(a).unwrap();
    assert_eq!(of_a.len(), 2);
    assert!(of_a.iter().all(|j| j.job.certificate_id == a));
    assert!(of_a.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    // A claimed job is no longer waiting; the other certificate's jobs are not listed.
    let now = now_ms();
    let claimed = c
        .claim_due_jobs(now, now - JOB_LEASE_MS, 1, "runner")
        .unwrap();
    assert_eq!(claimed[0].id, of_a[0].id);
    assert_eq!(
        ids(&c.waiting_jobs_of_certificate(a).unwrap()),
        vec![of_a[1].id]
    );
    assert_eq!(c.waiting_jobs_of_certificate(b).unwrap().len(), 1);
    assert!(c.waiting_jobs_of_certificate(9999).unwrap().is_empty());
}

fn agents_are_added_once_and_their_token_is_redeemed_once(service: &Service, _: &Path) {
    let c = service.catalog();
    c.add_agent("web1", "hash-1").unwrap();
    c.add_agent("db1", "hash-2").unwrap();
    assert!(matches!(
        c.add_agent("web1", "hash-3"),
        Err(Error::Invalid(_))
    ));
    let names: Vec<String> = c.agents().unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["db1", "web1"]);
    let web1 = c.agent("web1").unwrap().unwrap();
    assert_eq!(web1.state, AgentState::Registered);
    assert!(web1.token_pending);
    assert_eq!(web1.certificate_thumbprint, None);
    assert!(c.agent("nobody").unwrap().is_none());
    // A wrong token, or another agent's, redeems nothing.
    assert!(!c.redeem_agent_token("web1", "hash-2", "01", "aa").unwrap());
    assert!(c.redeem_agent_token("web1", "hash-1", "01", "aa").unwrap());
    // Threat: the same token used a second time (a copied token).
    assert!(!c.redeem_agent_token("web1", "hash-1", "02", "bb").unwrap());
    let web1 = c.agent("web1").unwrap().unwrap();
    assert!(!web1.token_pending);
    assert_eq!(web1.certificate_serial.as_deref(), Some("01"));
    assert_eq!(web1.certificate_thumbprint.as_deref(), Some("aa"));
    c.agent_seen("web1", "0.1.0", 1_000, 2, 1).unwrap();
    c.agent_seen("web1", "0.1.1", 2_000, 1, 0).unwrap();
    let web1 = c.agent("web1").unwrap().unwrap();
    assert_eq!(
        (
            web1.last_seen_ms,
            web1.version.as_deref(),
            web1.jobs_done,
            web1.jobs_failed
        ),
        (Some(2_000), Some("0.1.1"), 3, 1)
    );
    // A revoked agent's unused token is dead too.
    assert!(c.revoke_agent("db1").unwrap());
    assert!(!c.revoke_agent("nobody").unwrap());
    let db1 = c.agent("db1").unwrap().unwrap();
    assert_eq!(db1.state, AgentState::Revoked);
    assert!(!db1.token_pending);
    assert!(!c.redeem_agent_token("db1", "hash-2", "03", "cc").unwrap());
    // A revoked name may be added again (a re-provisioned host), with no certificate; a
    // registered one may not.
    c.add_agent("db1", "hash-4").unwrap();
    let db1 = c.agent("db1").unwrap().unwrap();
    assert_eq!(db1.state, AgentState::Registered);
    assert!(db1.token_pending);
    assert_eq!(db1.certificate_thumbprint, None);
    assert!(c.redeem_agent_token("db1", "hash-4", "04", "dd").unwrap());
    assert!(matches!(
        c.add_agent("web1", "hash-5"),
        Err(Error::Invalid(_))
    ));
}

fn a_machines_claim_takes_only_its_stores_jobs_and_a_lease_finishes_once(
    service: &Service,
    dir: &Path,
) {
    let cert = ca_and_enroll(service, "CN=machine.example");
    let pem = |name: &str, machine: Option<&str>| {
        service
            .add_store_with(
                None,
                StoreType::Pem,
                &dir.join(format!("{name}.crt")),
                Some(&dir.join(format!("{name}.key"))),
                None,
                None,
                &StoreOptions::default()
                    .machine(machine.map(str::to_string))
                    .plain_key(true)
                    .inventory_every_secs(machine.map(|_| 3_600)),
            )
            .unwrap()
            .id
    };
    service.catalog().add_agent("web1", "token-hash").unwrap();
    let own = pem("own", None);
    let web = pem("web", Some("web1"));
    let db = pem("db", Some("db1"));
    let stored = service.catalog().store(&web).unwrap().unwrap();
    assert_eq!(stored.machine.as_deref(), Some("web1"));
    assert!(stored.plain_key);
    assert_eq!(stored.inventory_every_secs, Some(3_600));
    let stored = service.catalog().store(&own).unwrap().unwrap();
    assert_eq!((stored.inventory_every(), stored.machine), (86_400, None));
    deploy(
        service,
        cert,
        &[own.clone(), web.clone(), db.clone()],
        "app",
    );
    let c = service.catalog();
    let now = now_ms();
    let stale = now - JOB_LEASE_MS;
    assert_eq!(
        c.machines_with_due_jobs(now, stale).unwrap(),
        ["db1", "web1"]
    );
    // The server's runner takes its own store's job only.
    let server = c.claim_due_jobs(now, stale, 10, "runner").unwrap();
    assert_eq!(
        server
            .iter()
            .map(|j| j.job.store_id.clone())
            .collect::<Vec<_>>(),
        [own]
    );
    let web_jobs = c
        .claim_machine_jobs(now, stale, 10, "agent:web1:a", Some("web1"))
        .unwrap();
    assert_eq!(web_jobs.len(), 1);
    assert_eq!(web_jobs[0].job.store_id, web);
    assert_eq!(web_jobs[0].claimed_by.as_deref(), Some("agent:web1:a"));
    assert!(
        c.claim_machine_jobs(now, stale, 10, "agent:web1:b", Some("web1"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.machines_with_due_jobs(now, stale).unwrap(), ["db1"]);
    let id = web_jobs[0].id;
    // Only the lease's holder finishes it, once.
    let finish = |holder: &str| {
        c.finish_leased_job(id, holder, JobStatus::Completed, JobResult::Success, "ok")
            .unwrap()
    };
    assert!(!finish("agent:web1:old"));
    assert_eq!(c.job(id).unwrap().unwrap().status, JobStatus::InProcess);
    assert!(finish("agent:web1:a"));
    assert!(!finish("agent:web1:a"));
    // Counted for web1 once, with the completion itself.
    let web1 = c.agent("web1").unwrap().unwrap();
    assert_eq!((web1.jobs_done, web1.jobs_failed), (1, 0));
    assert!(web1.last_seen_ms.is_some());
    let done = c.job(id).unwrap().unwrap();
    assert_eq!(
        (done.status, done.result),
        (JobStatus::Completed, Some(JobResult::Success))
    );
}

/// Threat: someone who knows an agent's name but not its token makes the CA sign for it (or
/// probes the CSR parser). The token is checked first: a wrong or used token gets the same
/// refusal whatever the CSR holds, and nothing is signed or spent.
fn an_agent_registration_without_its_token_is_refused_before_the_csr_is_read(
    service: &Service,
    _: &Path,
) {
    ca_and_enroll(service, "CN=agent-ca.example");
    let token = service.add_agent(None, "web1").unwrap();
    let garbage = b"not a certificate request";
    for wrong in ["", "pfxkit-agent_0000", "web1"] {
        let err = service.register_agent("web1", wrong, garbage).unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    }
    // With the token, the CSR is read (and refused), and the token stays unused.
    let err = service.register_agent("web1", &token, garbage).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let c = service.catalog();
    assert!(c.agent("web1").unwrap().unwrap().token_pending);
    // Revoked: the token no longer matches.
    service.revoke_agent(None, "web1").unwrap();
    let err = service.register_agent("web1", &token, garbage).unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
}

/// A plain-key PEM store `cert` + `key` on `machine` (`None`: this host).
fn pem_store(
    service: &Service,
    cert: &Path,
    key: &Path,
    machine: Option<&str>,
) -> pfxkit_catalog::Result<String> {
    service
        .add_store_with(
            None,
            StoreType::Pem,
            cert,
            Some(key),
            None,
            None,
            &StoreOptions::default()
                .machine(machine.map(str::to_string))
                .plain_key(true),
        )
        .map(|s| s.id)
}

/// Threat: a store's file recorded again — under another name, through a link or `..` — as a
/// second store in another container, so that grants on that container reach the first
/// store's keys.
fn one_file_is_one_store_on_each_host_until_its_store_is_removed(service: &Service, dir: &Path) {
    let refused_for = |result: pfxkit_catalog::Result<String>, owner: &str| match result {
        Err(Error::Invalid(reason)) => {
            assert!(reason.contains(owner), "{reason}");
            assert!(reason.contains("one file is one store"), "{reason}");
        }
        other => panic!("{other:?}"),
    };
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.crt"), b"").unwrap();
    let original = pem_store(service, &dir.join("a.crt"), &dir.join("a.key"), None).unwrap();
    // A link to a file not written yet (the key file) and one to the certificate file.
    std::os::unix::fs::symlink(dir.join("a.key"), dir.join("key-link")).unwrap();
    std::os::unix::fs::symlink("a.crt", dir.join("crt-link")).unwrap();
    for (cert, key) in [
        (dir.join("a.crt"), dir.join("other.key")),
        (dir.join("crt-link"), dir.join("other.key")),
        (dir.join("sub/../a.crt"), dir.join("other.key")),
        (dir.join("other.crt"), dir.join("key-link")),
        (dir.join("other.crt"), dir.join("a.crt")),
    ] {
        refused_for(pem_store(service, &cert, &key, None), &original);
    }
    assert_eq!(service.catalog().stores().unwrap().len(), 1);
    // The same paths on agents' machines are other files; on one machine they are one store.
    service.catalog().add_agent("web1", "hash-1").unwrap();
    let web = pem_store(
        service,
        &dir.join("a.crt"),
        &dir.join("a.key"),
        Some("web1"),
    )
    .unwrap();
    refused_for(
        pem_store(
            service,
            &dir.join("a.crt"),
            &dir.join("b.key"),
            Some("web1"),
        ),
        &web,
    );
    pem_store(service, &dir.join("a.crt"), &dir.join("a.key"), Some("db1")).unwrap();
    // A removed store's files are free again.
    service.remove_store(&original).unwrap();
    pem_store(service, &dir.join("crt-link"), &dir.join("key-link"), None).unwrap();
    assert_eq!(service.catalog().stores().unwrap().len(), 3);
}

/// Threat: two registrations of one file racing (two API requests at once) both passing a
/// check made before either is recorded.
fn concurrent_registrations_of_one_file_make_one_store(service: &Service, dir: &Path) {
    const RACERS: usize = 4;
    for round in 0..8 {
        let target = dir.join(format!("race{round}.crt"));
        let names: Vec<_> = (0..RACERS)
            .map(|i| {
                let link = dir.join(format!("race{round}-{i}.crt"));
                std::os::unix::fs::symlink(&target, &link).unwrap();
                link
            })
            .collect();
        let barrier = std::sync::Barrier::new(RACERS);
        let made = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let barrier = &barrier;
                    let key = dir.join(format!("race{round}-{i}.key"));
                    s.spawn(move || {
                        barrier.wait();
                        pem_store(service, name, &key, None)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(Result::is_ok)
                .count()
        });
        assert_eq!(made, 1, "round {round}: {made} stores for one file");
    }
    assert_eq!(service.catalog().stores().unwrap().len(), 8);
}

/// A catalog made before `store_files` (schema 6) learns its stores' files when it is
/// upgraded: a file registered then is still refused after. `downgrade` takes the catalog
/// back to schema 6; `upgraded` opens it with this build.
fn earlier_stores_files_are_known_after_the_upgrade(
    dir: &Path,
    service: Service,
    downgrade: impl FnOnce(),
    upgraded: impl FnOnce() -> Service,
) {
    let original = pem_store(&service, &dir.join("a.crt"), &dir.join("a.key"), None).unwrap();
    drop(service);
    downgrade();
    std::os::unix::fs::symlink(dir.join("a.key"), dir.join("link")).unwrap();
    let service = upgraded();
    let refused = pem_store(&service, &dir.join("b.crt"), &dir.join("link"), None).unwrap_err();
    assert!(refused.to_string().contains(&original), "{refused}");
}

#[test]
fn an_upgraded_sqlite_catalog_knows_the_files_of_its_earlier_stores() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    earlier_stores_files_are_known_after_the_upgrade(
        dir.path(),
        sqlite(dir.path()),
        || {
            rusqlite::Connection::open(catalog.join("catalog.sqlite"))
                .unwrap()
                .execute_batch("DROP TABLE store_files; PRAGMA user_version = 6;")
                .unwrap();
        },
        || Service::open(&catalog).unwrap(),
    );
}

#[test]
fn an_upgraded_postgres_catalog_knows_the_files_of_its_earlier_stores() {
    let Some(server) = pg::TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (service, conninfo) = postgres_with_conninfo(&server, dir.path());
    let location =
        CatalogLocation::parse(&conninfo, Some(&dir.path().join("catalog.key"))).unwrap();
    earlier_stores_files_are_known_after_the_upgrade(
        dir.path(),
        service,
        || {
            postgres::Client::connect(&conninfo, postgres::NoTls)
                .unwrap()
                .batch_execute(
                    "DROP TABLE store_files; DELETE FROM pfxkit_schema WHERE version = 7;",
                )
                .unwrap();
        },
        || {
            // Until `catalog init` upgrades it, the catalog is refused.
            assert!(Service::open_at(&location).is_err());
            Service::init_at(&location).unwrap()
        },
    );
}

fn the_job_queue_counts_due_leased_and_future_jobs_of_this_hosts_stores(
    service: &Service,
    dir: &Path,
) {
    let cert = ca_and_enroll(service, "CN=queue.example");
    let c = service.catalog();
    assert_eq!(
        c.job_queue(now_ms(), JOB_LEASE_MS).unwrap(),
        JobQueue::default()
    );
    let stores = jks_stores(service, dir, 4);
    // Three due jobs; one claimed (leased), the other two waiting.
    deploy(service, cert, &stores[..3], "a");
    let now = now_ms();
    let claimed = c
        .claim_due_jobs(now, now - JOB_LEASE_MS, 1, "runner")
        .unwrap();
    let claimed_at = claimed[0].claimed_ms.unwrap();
    // A job in an hour, and one on an agent's store (never counted here).
    let in_an_hour = pfxkit_catalog::jobs::format_time(now + 3_600_000);
    service
        .deploy(
            cert,
            &stores[3..],
            Some("later"),
            false,
            &JobOptions::new(None, Some(&in_an_hour), None),
        )
        .unwrap();
    c.add_agent("web1", "hash").unwrap();
    let remote = pem_store(
        service,
        &dir.join("r.crt"),
        &dir.join("r.key"),
        Some("web1"),
    )
    .unwrap();
    deploy(service, cert, &[remote], "a");
    let queue = c.job_queue(now, JOB_LEASE_MS).unwrap();
    assert_eq!(queue.due, 2, "{queue:?}");
    assert_eq!(queue.leased, 1, "{queue:?}");
    assert_eq!(queue.leased_until_ms, Some(claimed_at + JOB_LEASE_MS));
    let next = queue.next_due_ms.unwrap();
    assert!(
        (now + 3_599_000..=now + 3_601_000).contains(&next),
        "{next}"
    );
    // After the lease: the claimed job counts as due again (its runner is presumed dead).
    let later = claimed_at + JOB_LEASE_MS;
    let queue = c.job_queue(later, JOB_LEASE_MS).unwrap();
    assert_eq!(
        (queue.due, queue.leased, queue.leased_until_ms),
        (3, 0, None)
    );
    // Service::job_queue is the catalog's answer.
    assert_eq!(service.job_queue(later).unwrap(), queue);
}
