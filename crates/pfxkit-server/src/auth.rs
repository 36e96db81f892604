//! Authentication: `Authorization: Basic` (users, Argon2id) and `Bearer` (API tokens).
//!
//! Clients send Basic credentials on every request, and an Argon2id verification costs tens of
//! milliseconds of CPU: verifying each would cap the server at a few dozen requests a second
//! and hand anyone a CPU-exhaustion lever. So:
//!
//! - **Credential cache.** A successful verification is remembered for
//!   [`ServerLimits::credential_cache`] as an HMAC-SHA-256 of `name NUL password` under a random
//!   key made at start-up and held only in memory; the password itself is never kept. A later
//!   request with the same credentials costs one HMAC. A memory dump yields keyed hashes of
//!   recently used credentials, no better than the Argon2 hashes in the catalog.
//! - **Bounded verifications.** At most [`ServerLimits::max_verifications`] Argon2id runs at
//!   once (a semaphore); other logins wait their turn, so a flood of bad logins takes those
//!   cores at most, and cached credentials keep being served. A login that waited looks in the
//!   cache again when its turn comes: when cached credentials expire under load, the requests
//!   that carried them meanwhile are answered by the one verification already made, not each
//!   by its own (64 connections were 64 Argon2 runs, a latency spike of most of a second).
//! - **Verifier threads.** The runs happen on `max_verifications` threads of their own, each
//!   with its Argon2id memory (19 MiB, wiped after each run) allocated once. Allocated per run
//!   on whichever blocking thread, it stayed resident per thread and burst: one cache expiry
//!   under load left 640 MiB; now memory holds as many runs as there are verifier threads.
//! - **Slow-down.** Each failed login for a user name and for a client address doubles the delay
//!   before the next verification for that name or address (from 250 ms up to 8 s, forgotten
//!   after 15 minutes without failure); the wait is a timer, not CPU. Every failure is logged
//!   with the name, the address and the count, never the password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::{ApiError, ServerError};
use crate::{ServerLimits, State};
use pfxkit::secret::Password;
use pfxkit_catalog::users::VerifierMemory;

/// Entries kept in the credential cache and the failure table before they are pruned.
const MAX_ENTRIES: usize = 10_000;
/// First delay after a failure; doubles per failure.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest delay.
const MAX_DELAY: Duration = Duration::from_secs(8);
/// A failure count is forgotten after this long without a new failure.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Longest wait for a verification slot before answering 503.
const SLOT_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FailureKey {
    User(String),
    Address(IpAddr),
}

/// The authenticator shared by all requests.
pub struct Authenticator {
    cache_key: Zeroizing<[u8; 32]>,
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    failures: Mutex<HashMap<FailureKey, Failures>>,
    verifications: Arc<Semaphore>,
    verifiers: Verifiers,
    verified: AtomicU64,
    ttl: Duration,
}

/// A job for a verifier thread, given that thread's Argon2 memory.
type VerifierJob = Box<dyn FnOnce(&mut VerifierMemory) + Send>;

/// Threads of their own for password verifications (see the module docs).
struct Verifiers {
    jobs: Mutex<std::sync::mpsc::Sender<VerifierJob>>,
}

impl Verifiers {
    /// `n` threads; they end when the verifiers are dropped.
    fn start(n: usize) -> Result<Self, ServerError> {
        let (tx, rx) = std::sync::mpsc::channel::<VerifierJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("pfxkit-verify-{i}"))
                .spawn(move || {
                    let mut memory = VerifierMemory::new();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| ServerError::Io(format!("cannot start a verifier thread: {e}")))?;
        }
        Ok(Verifiers {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `f` on a verifier thread, with that thread's memory; its answer.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut VerifierMemory) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: VerifierJob = Box::new(move |memory| {
            let _ = tx.send(f(memory));
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(http::StatusCode::UNAUTHORIZED, message)
}

impl Authenticator {
    /// A new authenticator with a fresh random cache key.
    ///
    /// # Errors
    /// [`ServerError::Io`] when no randomness is available.
    pub fn new(limits: &ServerLimits) -> Result<Self, ServerError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| ServerError::Io(e.to_string()))?;
        Ok(Authenticator {
            cache_key: key,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verifications: Arc::new(Semaphore::new(limits.max_verifications.max(1))),
            verifiers: Verifiers::start(limits.max_verifications)?,
            verified: AtomicU64::new(0),
            ttl: limits.credential_cache,
        })
    }

    fn credential_mac(&self, name: &str, password: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.cache_key.as_ref()) else {
            return [0; 32];
        };
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, mac: &[u8; 32]) -> Option<String> {
        let cache = self.cache.lock().ok()?;
        let (principal, expires) = cache.get(mac)?;
        (Instant::now() < *expires).then(|| principal.clone())
    }

    fn remember(&self, mac: [u8; 32], principal: &str) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (_, expires)| *expires > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(mac, (principal.to_string(), now + self.ttl));
    }

    /// The delay owed before verifying for this name and address.
    fn delay(&self, keys: &[FailureKey]) -> Duration {
        let Ok(table) = self.failures.lock() else {
            return MAX_DELAY;
        };
        let now = Instant::now();
        keys.iter()
            .filter_map(|k| table.get(k))
            .filter(|f| now.duration_since(f.last) < FAILURE_MEMORY)
            .map(|f| {
                let d = FIRST_DELAY.saturating_mul(1 << f.count.saturating_sub(1).min(6));
                d.min(MAX_DELAY).saturating_sub(now.duration_since(f.last))
            })
            .max()
            .unwrap_or_default()
    }

    fn failed(&self, keys: &[FailureKey]) -> u32 {
        let Ok(mut table) = self.failures.lock() else {
            return 0;
        };
        let now = Instant::now();
        if table.len() >= MAX_ENTRIES {
            table.retain(|_, f| now.duration_since(f.last) < FAILURE_MEMORY);
        }
        let mut worst = 0;
        for k in keys {
            let f = table.entry(k.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= FAILURE_MEMORY {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            worst = worst.max(f.count);
        }
        worst
    }

    fn succeeded(&self, user: &str) {
        if let Ok(mut table) = self.failures.lock() {
            table.remove(&FailureKey::User(user.to_string()));
        }
    }

    /// Password verifications (Argon2id runs) made since start.
    pub fn verifications(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Failures recorded for a user name (for tests and the log).
    pub fn failures_of(&self, user: &str) -> u32 {
        self.failures
            .lock()
            .ok()
            .and_then(|t| t.get(&FailureKey::User(user.to_string())).map(|f| f.count))
            .unwrap_or(0)
    }
}

/// Authenticates a request's `Authorization` header; the principal.
pub(crate) async fn authenticate(
    state: &Arc<State>,
    header: Option<&http::HeaderValue>,
    peer: IpAddr,
) -> Result<String, ApiError> {
    let Some(value) = header.and_then(|h| h.to_str().ok()) else {
        return Err(unauthorized("authentication required (Basic or Bearer)"));
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        basic(state, rest.trim(), peer).await
    } else if scheme.eq_ignore_ascii_case("bearer") {
        bearer(state, rest.trim(), peer).await
    } else {
        Err(unauthorized(
            "unsupported authentication scheme (Basic or Bearer)",
        ))
    }
}

async fn basic(state: &Arc<State>, encoded: &str, peer: IpAddr) -> Result<String, ApiError> {
    if encoded.len() > 4096 {
        return Err(unauthorized("credentials too long"));
    }
    let decoded = Zeroizing::new(
        Base64::decode_vec(encoded).map_err(|_| unauthorized("malformed Basic credentials"))?,
    );
    let text =
        std::str::from_utf8(&decoded).map_err(|_| unauthorized("malformed Basic credentials"))?;
    let (name, password) = text
        .split_once(':')
        .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
    let auth = &state.auth;
    let mac = auth.credential_mac(name, password);
    if let Some(principal) = auth.cached(&mac) {
        return Ok(principal);
    }
    let keys = [
        FailureKey::User(name.to_string()),
        FailureKey::Address(peer),
    ];
    let delay = auth.delay(&keys);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let permit = tokio::time::timeout(SLOT_WAIT, auth.verifications.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "too many logins in progress; retry later",
            )
        })?;
    // Credentials verified by another request while this one waited for its turn.
    if let Some(principal) = auth.cached(&mac) {
        return Ok(principal);
    }
    // `DOMAIN\user`: the whole name first, then without the domain.
    let mut candidates = vec![name.to_string()];
    if let Some((_, user)) = name.rsplit_once('\\')
        && !user.is_empty()
    {
        candidates.push(user.to_string());
    }
    let password = Password::new(password);
    let shared = state.clone();
    auth.verified.fetch_add(1, Ordering::Relaxed);
    let verified = auth
        .verifiers
        .run(move |memory| {
            // Remembered before the turn passes on: the next waiter finds it in the cache.
            let _permit = permit;
            for candidate in candidates {
                match shared
                    .service
                    .verify_password_with(&candidate, &password, memory)
                {
                    Ok(true) => {
                        shared.auth.remember(mac, &candidate);
                        return Ok(Some(candidate));
                    }
                    Ok(false) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        })
        .await
        .ok_or_else(|| {
            ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })??;
    match verified {
        Some(principal) => {
            auth.succeeded(name);
            Ok(principal)
        }
        None => {
            let count = auth.failed(&keys);
            tracing::warn!(user = %shorten(name), peer = %peer, failures = count, "failed login");
            Err(unauthorized("bad user name or password"))
        }
    }
}

async fn bearer(state: &Arc<State>, token: &str, peer: IpAddr) -> Result<String, ApiError> {
    let keys = [FailureKey::Address(peer)];
    let delay = state.auth.delay(&keys);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let token = Zeroizing::new(token.to_string());
    let principal = state
        .blocking(move |service| {
            Ok(service.token_principal(&token, pfxkit_catalog::jobs::now_ms())?)
        })
        .await?;
    match principal {
        Some(p) => Ok(p),
        None => {
            let count = state.auth.failed(&keys);
            tracing::warn!(peer = %peer, failures = count, "bad or expired bearer token");
            Err(unauthorized("bad or expired token"))
        }
    }
}

/// A user-supplied name cut for the log (an attacker's name could be long).
fn shorten(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threat: verifications spread over the blocking pool's threads, each keeping the 19 MiB
    /// it freed (see the module docs). However many run, they run on the verifier threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifications_run_on_the_verifier_threads_only() {
        let verifiers = Arc::new(Verifiers::start(2).unwrap());
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let verifiers = verifiers.clone();
            runs.spawn(async move {
                verifiers
                    .run(|_| {
                        std::thread::sleep(Duration::from_millis(2));
                        std::thread::current().name().map(str::to_string)
                    })
                    .await
            });
        }
        let mut threads = std::collections::BTreeSet::new();
        while let Some(name) = runs.join_next().await {
            threads.insert(name.unwrap().unwrap().unwrap());
        }
        assert!(threads.len() <= 2, "{threads:?}");
        assert!(threads.iter().all(|t| t.starts_with("pfxkit-verify-")));
    }
}
