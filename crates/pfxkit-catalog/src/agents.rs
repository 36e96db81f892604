//! Agents: a process on each host that holds stores, running the jobs of that host's stores
//! (`docs/cli.md`, "The agent"; ARCHITECTURE.md, "Agent").
//!
//! The catalog side of the protocol, transport-free: adding an agent yields a one-time
//! registration token (only its SHA-256 is kept); registering trades the token and a PKCS#10
//! request for a client certificate from the catalog's CA; from then on the agent is known by
//! that certificate alone (its SHA-256 thumbprint is recorded), and may claim, complete and
//! inventory only the stores whose `machine` is its name. A revoked agent is refused on its
//! next request, whatever certificate it shows.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::service::{CertificateRef, Service};
use super::{Action, AgentRecord, AgentState, JobId, JobRecord, JobResult, JobStatus, StoreRecord};
use crate::ca::{self, Issuer, SubjectKey, Usage};
use crate::error::{Error, Result};
use crate::jobs::{JOB_LEASE_MS, entry_password_for, now_ms};
use pfxkit::cert::Certificate;
use pfxkit::identity::Identity;
use pfxkit::secret::Password;

/// How long an agent's client certificate is valid, in days. Renewal is a new registration
/// (`agents add` after `agents revoke`); a year keeps that rare.
pub const AGENT_CERTIFICATE_DAYS: u32 = 365;

/// The prefix of every registration token (so a leaked one is recognisable in logs and scans).
pub const TOKEN_PREFIX: &str = "pfxa_";

/// Checks an agent's name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not starting with `.`
/// or `-`. The name becomes the CN of its certificate and the `machine` of its stores, so it
/// must not carry DN syntax or path characters.
///
/// # Errors
/// [`Error::Invalid`] naming what is wrong.
pub fn check_agent_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 {
        return Err(Error::Invalid(format!(
            "agent name '{name}': 1 to 64 characters expected"
        )));
    }
    if !name.chars().all(ok_char) || name.starts_with(['.', '-']) {
        return Err(Error::Invalid(format!(
            "agent name '{name}': only letters, digits, '.', '_' and '-' (not first) are allowed"
        )));
    }
    Ok(())
}

/// The SHA-256 of a registration token, lower-case hex: what the catalog keeps.
pub fn token_hash(token: &str) -> String {
    pfxkit::cert::hex_lower(&Sha256::digest(token.as_bytes()))
}

/// A job handed to the agent that holds its lease: what to put where, with the key and entry
/// password (the only time they leave the catalog for another host).
#[derive(Debug)]
#[non_exhaustive]
pub struct AgentJob {
    /// The job as claimed.
    pub job: JobRecord,
    /// Its store (the agent resolves the store password reference itself).
    pub store: StoreRecord,
    /// The key and chain to put there.
    pub identity: Identity,
    /// The entry password, opened (`None` for plain-key PEM stores and jobs without one).
    pub entry_password: Option<Password>,
}

/// A claim by an agent: the lease's holder (sent back with each completion) and the jobs.
#[derive(Debug)]
#[non_exhaustive]
pub struct AgentClaim {
    /// The holder id of this claim's leases: unique per claim, so a completion from an
    /// earlier claim of the same job is told apart.
    pub holder: String,
    /// The jobs, each store's in order.
    pub jobs: Vec<AgentJob>,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    getrandom::fill(&mut b).map_err(|e| Error::io_other(e.to_string()))?;
    Ok(pfxkit::cert::hex_lower(&b))
}

impl Service {
    /// Adds an agent and returns its one-time registration token; only the token's SHA-256 is
    /// recorded, so it is shown this once.
    ///
    /// # Errors
    /// [`Error::Forbidden`] without `admin`; [`Error::Invalid`] for a bad or taken name;
    /// database errors.
    pub fn add_agent(&self, principal: Option<&str>, name: &str) -> Result<Zeroizing<String>> {
        self.authorize(principal, Action::Admin)?;
        check_agent_name(name)?;
        let token = Zeroizing::new(format!("{TOKEN_PREFIX}{}", random_hex(32)?));
        self.catalog().add_agent(name, &token_hash(&token))?;
        Ok(token)
    }

    /// Every agent.
    ///
    /// # Errors
    /// [`Error::Forbidden`] without `admin`; database errors.
    pub fn agents(&self, principal: Option<&str>) -> Result<Vec<AgentRecord>> {
        self.authorize(principal, Action::Admin)?;
        self.catalog().agents()
    }

    /// Revokes an agent: its certificate is refused from its next request on, and its jobs
    /// wait (they are not given to anyone else: the store's files are on its host).
    ///
    /// # Errors
    /// [`Error::Forbidden`] without `admin`; [`Error::NotFound`] for an unknown agent;
    /// database errors.
    pub fn revoke_agent(&self, principal: Option<&str>, name: &str) -> Result<AgentRecord> {
        self.authorize(principal, Action::Admin)?;
        if !self.catalog().revoke_agent(name)? {
            return Err(Error::NotFound(format!("unknown agent '{name}'")));
        }
        self.catalog()
            .agent(name)?
            .ok_or_else(|| Error::NotFound(format!("unknown agent '{name}'")))
    }

    /// Registers an agent: checks the token, then the CSR's proof of possession, issues a
    /// client certificate for `CN=<name>` from the catalog's CA, and uses up the token — in
    /// that order, so nothing is signed for a caller without the token, a token is spent only
    /// on a certificate actually issued, and two registrations racing
    /// with one token get one certificate (the redemption is one conditional update).
    /// Returns the certificate, then the CA chain.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for an unknown or revoked agent or a wrong or used token (one
    /// message for all: a token guesser learns nothing); [`Error::Invalid`] for a bad CSR or a
    /// catalog without a CA; database errors.
    pub fn register_agent(&self, name: &str, token: &str, csr: &[u8]) -> Result<Vec<Certificate>> {
        let refused = || {
            Error::Forbidden(format!(
                "registration of agent '{name}' refused: unknown agent, revoked, or a wrong or already used token"
            ))
        };
        check_agent_name(name).map_err(|_| refused())?;
        let hash = token_hash(token);
        // The token first: whoever does not hold it gets nothing read, checked or signed.
        if !self.catalog().agent_token_matches(name, &hash)? {
            return Err(refused());
        }
        let spki = ca::verify_csr(csr)?;
        let (ca_cert, ca_key, chain) = self.issuing_ca()?;
        let (not_before, not_after) = ca::validity(AGENT_CERTIFICATE_DAYS);
        let cert = ca::issue(
            &ca::Request {
                subject_der: ca::name_der(&format!("CN={name},OU=pfxkit agents"))?,
                sans: &[],
                subject_key: SubjectKey::Public(&spki),
                not_before,
                not_after,
                usage: Usage::Tls,
            },
            &Issuer {
                certificate: Some(&ca_cert),
                key: &ca_key,
            },
        )?;
        if !self.catalog().redeem_agent_token(
            name,
            &hash,
            &cert.serial_hex(),
            &cert.sha256_hex(),
        )? {
            return Err(refused());
        }
        let mut out = vec![cert];
        out.extend(chain);
        Ok(out)
    }

    /// The agent a client certificate (DER, as the TLS handshake verified it against the
    /// catalog's CA) stands for: the one registered with exactly this certificate and not
    /// revoked. Checked on every request, so a revocation takes effect at once.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for a certificate of no agent, of a revoked agent, or of an
    /// earlier registration; database errors.
    pub fn agent_for_certificate(&self, der: &[u8]) -> Result<AgentRecord> {
        let cert = Certificate::from_der(der)
            .map_err(|_| Error::Forbidden("the client certificate does not parse".into()))?;
        let thumbprint = cert.sha256_hex();
        let name = cert
            .subject()
            .split(',')
            .find_map(|rdn| rdn.trim().strip_prefix("CN="))
            .map(str::to_string)
            .ok_or_else(|| Error::Forbidden("the client certificate names no agent".into()))?;
        let agent = self
            .catalog()
            .agent(&name)?
            .ok_or_else(|| Error::Forbidden(format!("no agent '{name}'")))?;
        if agent.state == AgentState::Revoked {
            return Err(Error::Forbidden(format!("agent '{name}' is revoked")));
        }
        if agent.certificate_thumbprint.as_deref() != Some(thumbprint.as_str()) {
            return Err(Error::Forbidden(format!(
                "this certificate is not agent '{name}''s current one"
            )));
        }
        Ok(agent)
    }

    /// The stores of an agent (those whose machine is its name).
    ///
    /// # Errors
    /// Database errors.
    pub fn agent_stores(&self, agent: &str) -> Result<Vec<StoreRecord>> {
        Ok(self
            .catalog()
            .stores()?
            .into_iter()
            .filter(|s| s.machine.as_deref() == Some(agent))
            .collect())
    }

    /// Gives back every lease the agent's earlier runs hold (an agent restarted after a crash
    /// runs alone: its old process's leases are dead). Their late completions are refused.
    /// Returns how many jobs went back to the queue.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_agent_leases(&self, agent: &str) -> Result<usize> {
        let prefix = format!("agent:{agent}:");
        let stale: Vec<(JobId, String)> = self
            .catalog()
            .jobs()?
            .into_iter()
            .filter(|j| j.status == JobStatus::InProcess)
            .filter_map(|j| {
                j.claimed_by
                    .filter(|h| h.starts_with(&prefix))
                    .map(|h| (j.id, h))
            })
            .collect();
        for (id, holder) in &stale {
            self.catalog().release_jobs(&[*id], holder)?;
        }
        Ok(stale.len())
    }

    /// Claims up to `limit` due jobs of the agent's stores under a fresh lease holder, and
    /// opens what each needs. A job whose key cannot be opened (no staged key, a tampered
    /// seal) is finished as a Failure here and not handed out.
    ///
    /// # Errors
    /// Database errors.
    pub fn claim_agent_jobs(&self, agent: &str, limit: usize) -> Result<AgentClaim> {
        let holder = format!("agent:{agent}:{}", random_hex(8)?);
        let now = now_ms();
        let claimed = self.catalog().claim_machine_jobs(
            now,
            now.saturating_sub(JOB_LEASE_MS),
            limit.max(1),
            &holder,
            Some(agent),
        )?;
        let mut jobs = Vec::with_capacity(claimed.len());
        for job in claimed {
            match self.agent_job(job.clone()) {
                Ok(j) => jobs.push(j),
                Err(Error::Database(e)) => return Err(Error::Database(e)),
                Err(e) => {
                    self.catalog().finish_leased_job(
                        job.id,
                        &holder,
                        JobStatus::Completed,
                        JobResult::Failure,
                        &e.to_string(),
                    )?;
                }
            }
        }
        Ok(AgentClaim { holder, jobs })
    }

    fn agent_job(&self, job: JobRecord) -> Result<AgentJob> {
        let store = self
            .catalog()
            .store(&job.job.store_id)?
            .ok_or_else(|| Error::Invalid(format!("unknown store {}", job.job.store_id)))?;
        let record = self.certificate(&CertificateRef::Id(job.job.certificate_id))?;
        let identity = self.staged_identity(&record)?;
        let entry_password = self.open_entry_password(&job)?;
        Ok(AgentJob {
            entry_password: entry_password_for(&store, entry_password),
            job,
            store,
            identity,
        })
    }

    /// Records an agent's completion of a job it holds the lease of, with the inventory of
    /// the store it took right after. Returns whether it was recorded: `false` is a late
    /// completion from a lease that ended (the job was given back or taken over).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown job; [`Error::Forbidden`] for a job of another
    /// machine's store; database errors.
    pub fn complete_agent_job(
        &self,
        agent: &str,
        id: JobId,
        holder: &str,
        result: JobResult,
        message: &str,
        inventory: Option<&[(String, Vec<Certificate>)]>,
    ) -> Result<bool> {
        let job = self
            .catalog()
            .job(id)?
            .ok_or_else(|| Error::NotFound(format!("unknown job {id}")))?;
        let store = self.agent_store(agent, &job.job.store_id)?;
        if !holder.starts_with(&format!("agent:{agent}:")) {
            return Err(Error::Forbidden(format!(
                "lease '{holder}' is not agent '{agent}''s"
            )));
        }
        let recorded =
            self.catalog()
                .finish_leased_job(id, holder, JobStatus::Completed, result, message)?;
        // The job is counted for the agent in the same transaction (its lease names it).
        if recorded && let Some(found) = inventory {
            self.record_inventory(&store.id, found)?;
        }
        Ok(recorded)
    }

    /// A store of the agent's machine, or [`Error::Forbidden`] (another machine's, or the
    /// server's own) / [`Error::NotFound`].
    ///
    /// # Errors
    /// As described; database errors.
    pub fn agent_store(&self, agent: &str, store_id: &str) -> Result<StoreRecord> {
        let store = self
            .catalog()
            .store(store_id)?
            .ok_or_else(|| Error::NotFound(format!("unknown store {store_id}")))?;
        if store.machine.as_deref() != Some(agent) {
            return Err(Error::Forbidden(format!(
                "store {store_id} is not on agent '{agent}''s machine"
            )));
        }
        Ok(store)
    }

    /// Records an inventory an agent took of one of its stores (a scheduled one, or after a
    /// job), adding certificates the catalog did not know. Returns the entries recorded.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for another machine's store; database errors.
    pub fn report_agent_inventory(
        &self,
        agent: &str,
        store_id: &str,
        found: &[(String, Vec<Certificate>)],
    ) -> Result<usize> {
        let store = self.agent_store(agent, store_id)?;
        self.record_inventory(&store.id, found)?;
        Ok(found.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_cannot_carry_dn_or_path_syntax() {
        for good in ["web1", "db-01.example", "a_b"] {
            assert!(check_agent_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a,b", "CN=x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_agent_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_csr_verifies_only_with_the_key_that_signed_it() {
        let key = crate::ca::KeyType::EcP256.generate().unwrap();
        let der = ca::csr(&key, "CN=web1").unwrap();
        let spki = ca::verify_csr(&der).unwrap();
        assert_eq!(spki, ca::public_key_info(&key).unwrap());
        // Threat: a request carrying someone else's public key (no proof of possession).
        let mut forged = der.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(ca::verify_csr(&forged).is_err());
        assert!(ca::verify_csr(b"not a csr").is_err());
    }
}
