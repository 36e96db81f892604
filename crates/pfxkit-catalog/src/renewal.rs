//! Renewal that nobody has to remember (the fleet specification, issue 19): which located
//! certificates expire soon, renew-and-replace in one step, and renewal policies that a check
//! (`renew-due`, or the server every hour) carries out.
//!
//! A policy check renews each located certificate inside its policy's window that has no
//! successor yet, then replaces it in every store where it is located, acting as the policy's
//! principal. "Exactly once" is a property of one catalog transaction
//! ([`Catalog::record_renewal`](crate::Catalog::record_renewal)), not of timing: two checks at
//! once may both sign a certificate, but only one is recorded, and only the one recorded is
//! replaced; the other is dropped unrecorded.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use super::authz::Action;
use super::jobs::{JobOptions, NewCertificate, StoreOutcome, format_time};
use super::service::{CertificateRef, Enrollment, Service};
use super::{
    CertificateId, ContainerId, ExpiringRecord, HistoryRecord, NewPolicy, PolicyRecord,
    RenewalOutcome, StoreDecision, StorePasswordRecord, StoreRecord,
};
use crate::error::{Error, Result};
use pfxkit::secret::{Password, PasswordSource};

/// The longest window `--within` and `--renew-before` accept: 100 years, beyond any
/// certificate's validity, so the arithmetic on it never overflows.
pub const MAX_WINDOW_SECS: i64 = 100 * 365 * 86_400;

const DAY_SECS: i64 = 86_400;

/// Parses a window such as `30d`, `12h` or `90m`; a bare number is days.
///
/// # Errors
/// [`Error::Invalid`] for anything else, a negative window, or one over [`MAX_WINDOW_SECS`].
pub fn parse_window(text: &str) -> Result<i64> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "window '{text}': {why} (expected a number of days like 30d, or hours like 12h)"
        ))
    };
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 'd')) => (text.get(..i).unwrap_or_default(), DAY_SECS),
        Some((i, 'h')) => (text.get(..i).unwrap_or_default(), 3600),
        Some((i, 'm')) => (text.get(..i).unwrap_or_default(), 60),
        Some(_) => (text, DAY_SECS),
        None => return Err(bad("empty")),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a whole number"));
    }
    let secs = digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|s| *s <= MAX_WINDOW_SECS)
        .ok_or_else(|| bad("longer than 100 years"))?;
    Ok(secs)
}

/// A located certificate expiring within a window (`pfxkit expiring`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExpiringCertificate {
    /// The certificate with its location count and successor.
    pub expiring: ExpiringRecord,
    /// Whole days from now until `NotAfter`, rounded down (negative once expired).
    pub days_left: i64,
}

/// The answer of `renew --replace`: the new certificate and where a job will put it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RenewReplace {
    /// The new certificate (its `CertificateInformation`).
    pub enrollment: Enrollment,
    /// `SuccessfulStores` / `FailedStores` / `Failures` of the Replace.
    pub outcome: StoreOutcome,
}

/// Milliseconds since the epoch as a `SystemTime` (clamped at the epoch).
fn system_time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn policy_password_label(container: Option<ContainerId>) -> String {
    match container {
        Some(c) => format!("policy-entry-password:container:{c}"),
        None => "policy-entry-password:global".to_string(),
    }
}

impl Service {
    /// Every located certificate whose `NotAfter` is at or before `now_ms` + `within_secs`
    /// (expired ones included), soonest first.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a negative window; database errors.
    pub fn expiring(&self, now_ms: i64, within_secs: i64) -> Result<Vec<ExpiringCertificate>> {
        if !(0..=MAX_WINDOW_SECS).contains(&within_secs) {
            return Err(Error::Invalid(format!(
                "window of {within_secs} seconds: must be between 0 and 100 years"
            )));
        }
        let now_secs = now_ms.div_euclid(1000);
        Ok(self
            .catalog()
            .expiring(now_secs.saturating_add(within_secs))?
            .into_iter()
            .map(|expiring| {
                let not_after =
                    i64::try_from(expiring.record.certificate.not_after_unix()).unwrap_or(i64::MAX);
                ExpiringCertificate {
                    days_left: not_after.saturating_sub(now_secs).div_euclid(DAY_SECS),
                    expiring,
                }
            })
            .collect())
    }

    /// Renews a certificate (as [`Service::renew`]) and replaces it with its successor in every
    /// store where it is located (as [`Service::replace`]), in one call. `options.password` is
    /// both the transport password of the returned blob and the entry password of the jobs,
    /// as one password serves Keyfactor's PFX enrollment and its deployment.
    ///
    /// # Errors
    /// As [`Service::renew`], and the Replace's request errors (a bad JobTime is refused
    /// before anything is issued). Per-store problems go to `FailedStores`.
    pub fn renew_and_replace(
        &self,
        which: &CertificateRef,
        options: &JobOptions<'_>,
    ) -> Result<RenewReplace> {
        if let Some(t) = options.job_time {
            super::jobs::parse_time(t)?;
        }
        let old = self.certificate(which)?;
        let transport = options
            .password
            .cloned()
            .unwrap_or_else(|| Password::new(""));
        let enrollment = self.renew(options.principal, &CertificateRef::Id(old.id), &transport)?;
        let outcome = self.replace(
            old.id,
            NewCertificate::Certificate(enrollment.certificate_id),
            options,
        )?;
        Ok(RenewReplace {
            enrollment,
            outcome,
        })
    }

    fn container_id(&self, name: &str) -> Result<ContainerId> {
        Ok(self
            .catalog()
            .container_by_name(name)?
            .ok_or_else(|| Error::NotFound(format!("unknown container '{name}'")))?
            .id)
    }

    /// Sets the renewal policy of a container (or the global one, `container: None`),
    /// replacing the scope's previous policy. A literal (or stdin) entry password is sealed;
    /// `env:`/`file:` sources are kept as references, resolved at each check.
    ///
    /// # Errors
    /// [`Error::Forbidden`] unless `actor` holds the global admin permission;
    /// [`Error::NotFound`] for an unknown container; [`Error::Invalid`] for an empty principal or a window outside (0, 100 years];
    /// database errors.
    pub fn set_policy(
        &self,
        actor: Option<&str>,
        container: Option<&str>,
        renew_before_secs: i64,
        principal: &str,
        entry_password: Option<&PasswordSource>,
    ) -> Result<PolicyRecord> {
        // A policy acts with its principal's permissions, so whoever sets one chooses whose
        // permissions the check uses: that takes admin.
        self.authorize(actor, Action::Admin)?;
        if principal.trim().is_empty() {
            return Err(Error::Invalid("a policy needs a principal".into()));
        }
        if !(1..=MAX_WINDOW_SECS).contains(&renew_before_secs) {
            return Err(Error::Invalid(
                "--renew-before must be longer than zero and at most 100 years".into(),
            ));
        }
        let container_id = container.map(|n| self.container_id(n)).transpose()?;
        let entry_password = match entry_password {
            None => StorePasswordRecord::None,
            Some(PasswordSource::Env(var)) => StorePasswordRecord::Reference(format!("env:{var}")),
            Some(PasswordSource::File(p)) => {
                StorePasswordRecord::Reference(format!("file:{}", p.display()))
            }
            Some(other) => {
                let pw = other.resolve()?;
                StorePasswordRecord::Sealed(self.key().seal(
                    &policy_password_label(container_id),
                    pw.expose_secret().unwrap_or_default().as_bytes(),
                )?)
            }
        };
        self.catalog().set_policy(&NewPolicy {
            container_id,
            renew_before_secs,
            principal: principal.to_string(),
            entry_password,
        })
    }

    /// Removes the policy of a container (or the global one).
    ///
    /// # Errors
    /// [`Error::Forbidden`] unless `actor` holds the global admin permission;
    /// [`Error::NotFound`] for an unknown container or a scope without a policy; database
    /// errors.
    pub fn remove_policy(&self, actor: Option<&str>, container: Option<&str>) -> Result<()> {
        self.authorize(actor, Action::Admin)?;
        let container_id = container.map(|n| self.container_id(n)).transpose()?;
        if self.catalog().remove_policy(container_id)? {
            Ok(())
        } else {
            Err(Error::NotFound(match container {
                Some(n) => format!("container '{n}' has no renewal policy"),
                None => "there is no global renewal policy".to_string(),
            }))
        }
    }

    /// The entry password a policy's jobs use.
    fn policy_entry_password(&self, policy: &PolicyRecord) -> Result<Option<Password>> {
        match &policy.entry_password {
            StorePasswordRecord::None => Ok(None),
            StorePasswordRecord::Sealed(sealed) => {
                let text = self
                    .key()
                    .open(&policy_password_label(policy.container_id), sealed)?;
                let text = String::from_utf8(text.to_vec())
                    .map_err(|_| Error::malformed("sealed entry password", "not UTF-8"))?;
                Ok(Some(Password::new(text)))
            }
            StorePasswordRecord::Reference(r) => Ok(Some(r.parse::<PasswordSource>()?.resolve()?)),
        }
    }

    /// The policy check at `now_ms`: each located certificate inside the window of the policy
    /// that governs it (shortened to the second half of its lifetime when longer) and without a
    /// successor is renewed (subject, SANs and key type kept, a
    /// new key, valid from `now_ms` for as long as the original) and replaced in every store
    /// where it is located, acting as the policy's principal. Returns the decisions made (each
    /// also recorded in the history); a certificate another check renewed first is skipped.
    ///
    /// The policy of a container governs the certificates located in its stores, the global
    /// policy the rest; a certificate located in several containers with policies is governed
    /// by the one whose window opens first (then the oldest policy).
    ///
    /// # Errors
    /// Database errors. A certificate that cannot be renewed is a `Failed` decision, retried
    /// at the next check.
    pub fn renew_due(&self, now_ms: i64) -> Result<Vec<HistoryRecord>> {
        let policies = self.catalog().policies()?;
        let Some(widest) = policies.iter().map(|p| p.renew_before_secs).max() else {
            return Ok(Vec::new());
        };
        let now_secs = now_ms.div_euclid(1000);
        let mut stores: HashMap<String, Option<StoreRecord>> = HashMap::new();
        let mut decisions = Vec::new();
        for candidate in self.catalog().expiring(now_secs.saturating_add(widest))? {
            if candidate.successor.is_some() {
                continue;
            }
            let old = &candidate.record;
            let mut containers = BTreeSet::new();
            for location in self.catalog().locations(old.id)? {
                if !stores.contains_key(&location.store_id) {
                    let record = self.catalog().store(&location.store_id)?;
                    stores.insert(location.store_id.clone(), record);
                }
                if let Some(Some(store)) = stores.get(&location.store_id) {
                    containers.insert(store.container_id);
                }
            }
            let Some(policy) = governing(&policies, &containers) else {
                continue;
            };
            let window_start = window_start(&old.certificate, policy.renew_before_secs);
            let not_after = i64::try_from(old.certificate.not_after_unix()).unwrap_or(i64::MAX);
            if window_start > now_secs {
                continue;
            }
            let entry = HistoryRecord {
                id: None,
                policy_id: policy.id,
                container_id: policy.container_id,
                principal: policy.principal.clone(),
                certificate_id: old.id,
                not_after,
                window_start,
                successor_id: None,
                outcome: RenewalOutcome::Failed,
                message: None,
                stores: Vec::new(),
                decided_ms: now_ms,
            };
            if let Some(mut entry) = self.renew_by_policy(policy, old.id, now_ms, entry)? {
                entry.id = Some(self.catalog().add_history(&entry)?);
                decisions.push(entry);
            }
        }
        Ok(decisions)
    }

    /// One certificate's renewal and Replace under `policy`; `None` when another check
    /// renewed it first (nothing to record).
    fn renew_by_policy(
        &self,
        policy: &PolicyRecord,
        old: CertificateId,
        now_ms: i64,
        mut entry: HistoryRecord,
    ) -> Result<Option<HistoryRecord>> {
        let failed = |mut entry: HistoryRecord, e: Error| -> Result<Option<HistoryRecord>> {
            match e {
                Error::Database(d) => Err(Error::Database(d)),
                other => {
                    entry.message = Some(other.to_string());
                    Ok(Some(entry))
                }
            }
        };
        // The renewal acts as the policy's principal, which needs enroll; and the password
        // comes first: a policy whose principal or password is not ready renews nothing, so
        // the next check (after the grant, variable or file is fixed) still finds the
        // certificate due.
        if let Err(e) = self.authorize(Some(&policy.principal), Action::Enroll) {
            return failed(entry, e);
        }
        let password = match self.policy_entry_password(policy) {
            Ok(p) => p,
            Err(e) => return failed(entry, e),
        };
        let record = self.certificate(&CertificateRef::Id(old))?;
        let identity = match self.renewed_identity(&record, system_time(now_ms)) {
            Ok(identity) => identity,
            Err(e) => return failed(entry, e),
        };
        let Some((successor, _)) =
            self.record_renewal(&record, &identity, Some(policy.id), Some(&policy.principal))?
        else {
            return Ok(None);
        };
        entry.successor_id = Some(successor);
        // Jobs due at the check's time: a check run ahead of time (`--now`) issues a successor
        // valid from then, which no job may write before it is valid.
        let job_time = format_time(now_ms);
        let options = JobOptions::new(password.as_ref(), Some(&job_time), Some(&policy.principal));
        let outcome = match self.replace(old, NewCertificate::Certificate(successor), &options) {
            Ok(outcome) => outcome,
            Err(e) => return failed(entry, e),
        };
        entry.outcome = if outcome.failed.is_empty() {
            RenewalOutcome::Renewed
        } else {
            RenewalOutcome::PartiallyReplaced
        };
        entry.stores = outcome
            .successful
            .iter()
            .map(|s| StoreDecision {
                store_id: s.clone(),
                scheduled: true,
                reason: None,
            })
            .chain(outcome.failed.iter().map(|s| StoreDecision {
                store_id: s.clone(),
                scheduled: false,
                reason: outcome.failures.get(s).cloned(),
            }))
            .collect();
        Ok(Some(entry))
    }

    /// Every policy, global first.
    ///
    /// # Errors
    /// Database errors.
    pub fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.catalog().policies()
    }

    /// Every decision of the policy checks, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn policy_history(&self) -> Result<Vec<HistoryRecord>> {
        self.catalog().history()
    }
}

/// When a policy's window opens for a certificate (Unix seconds): `renew_before_secs` before
/// its `NotAfter`, but never earlier than half-way through its lifetime. A window longer than
/// that (a 30-day policy meant for one-year certificates, over a 20-day certificate) would make
/// every fresh successor due again at once, renewing it at every check.
fn window_start(certificate: &pfxkit::cert::Certificate, renew_before_secs: i64) -> i64 {
    let not_after = i64::try_from(certificate.not_after_unix()).unwrap_or(i64::MAX);
    let not_before = i64::try_from(certificate.not_before_unix()).unwrap_or(0);
    let half_life = not_after.saturating_sub(not_before) / 2;
    not_after.saturating_sub(renew_before_secs.min(half_life))
}

/// The policy governing a certificate located in stores of `containers` (`None`: a store in no
/// container): among the policies of those containers, the one whose window opens first (the
/// oldest on a tie); without any, the global policy.
fn governing<'p>(
    policies: &'p [PolicyRecord],
    containers: &BTreeSet<Option<ContainerId>>,
) -> Option<&'p PolicyRecord> {
    policies
        .iter()
        .filter(|p| p.container_id.is_some() && containers.contains(&p.container_id))
        .max_by_key(|p| (p.renew_before_secs, std::cmp::Reverse(p.id)))
        .or_else(|| policies.iter().find(|p| p.container_id.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_windows_in_days_hours_and_minutes() {
        assert_eq!(parse_window("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_window("30").unwrap(), 30 * 86_400);
        assert_eq!(parse_window("12h").unwrap(), 12 * 3600);
        assert_eq!(parse_window("90m").unwrap(), 90 * 60);
        assert_eq!(parse_window("0d").unwrap(), 0);
    }

    #[test]
    fn rejects_windows_that_are_not_whole_or_too_long() {
        for bad in [
            "",
            "d",
            "-1d",
            "1.5d",
            "30w",
            "30 d",
            "99999999999999999999d",
            "36501d",
        ] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    fn policy(id: i64, container: Option<i64>, days: i64) -> PolicyRecord {
        PolicyRecord {
            id,
            container_id: container,
            renew_before_secs: days * 86_400,
            principal: "p".into(),
            entry_password: StorePasswordRecord::None,
        }
    }

    #[test]
    fn a_container_policy_governs_before_the_global_one_and_the_earliest_window_wins() {
        let policies = [
            policy(1, None, 60),
            policy(2, Some(10), 10),
            policy(3, Some(20), 30),
            policy(4, Some(30), 30),
        ];
        let set = |c: &[Option<i64>]| c.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(governing(&policies, &set(&[None])).unwrap().id, 1);
        assert_eq!(governing(&policies, &set(&[Some(99)])).unwrap().id, 1);
        assert_eq!(governing(&policies, &set(&[Some(10), None])).unwrap().id, 2);
        assert_eq!(
            governing(&policies, &set(&[Some(10), Some(20)]))
                .unwrap()
                .id,
            3
        );
        assert_eq!(
            governing(&policies, &set(&[Some(30), Some(20)]))
                .unwrap()
                .id,
            3
        );
        assert!(governing(&policies[1..], &set(&[None])).is_none());
    }
}
