//! The agents' endpoints, under `/KeyfactorAPI/Agent/…` (see `docs/cli.md`, "agent
//! protocol"). Registration trades a one-time token and a PKCS#10 request for a client
//! certificate; every other endpoint authenticates by that certificate alone (mutual TLS) and
//! the catalog is asked on each request whether it is still the agent's current, unrevoked
//! one. An agent sees, claims, completes and inventories only its own machine's stores.
//!
//! Long-polling: a waiting `GET /Agent/Jobs` sleeps on a watch channel that one task refreshes
//! every runner interval with the machines that have due jobs (one cheap query for all the
//! waiting agents, none while nobody waits), so a job due now is handed out within a second.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::State;
use crate::body::{Fields, ReqBody, read_json};
use crate::error::ApiError;
use pfxkit::cert::Certificate;
use pfxkit_catalog::agents::AgentClaim;
use pfxkit_catalog::jobs::{JOB_LEASE_MS, now_ms};
use pfxkit_catalog::service::Service;
use pfxkit_catalog::{AgentRecord, JobResult, StorePasswordRecord, StoreRecord};

type Body = Full<Bytes>;

/// The longest long-poll (a request must end well within the request timeout).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(25);
/// Jobs handed out per poll at most.
pub(crate) const MAX_CLAIM: usize = 64;

/// One endpoint [`route`] serves, as `openapi.json` documents it.
#[derive(Debug)]
pub(crate) struct AgentEndpoint {
    pub(crate) method: &'static str,
    /// Under `/KeyfactorAPI`, `{id}` for a path parameter.
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    /// Whether it takes a JSON body.
    pub(crate) body: bool,
    /// Whether it needs the agent's client certificate (all but registration).
    pub(crate) certificate: bool,
}

/// Every endpoint [`route`] serves; a test checks each against the router.
pub(crate) const ENDPOINTS: &[AgentEndpoint] = &[
    AgentEndpoint {
        method: "POST",
        path: "/Agent/Register",
        summary: "Register an agent: a one-time token and a CSR for its client certificate",
        body: true,
        certificate: false,
    },
    AgentEndpoint {
        method: "POST",
        path: "/Agent/Hello",
        summary: "Start a session: gives back the leases of an earlier run; the agent's stores",
        body: true,
        certificate: true,
    },
    AgentEndpoint {
        method: "GET",
        path: "/Agent/Stores",
        summary: "The stores of the agent's machine",
        body: false,
        certificate: true,
    },
    AgentEndpoint {
        method: "GET",
        path: "/Agent/Jobs",
        summary: "Long-poll for due jobs of the agent's stores, claimed under one lease",
        body: false,
        certificate: true,
    },
    AgentEndpoint {
        method: "POST",
        path: "/Agent/Jobs/{id}/Complete",
        summary: "Report a leased job's outcome, with the store's inventory",
        body: true,
        certificate: true,
    },
    AgentEndpoint {
        method: "POST",
        path: "/Agent/Stores/{id}/Inventory",
        summary: "Report a scheduled inventory of one of the agent's stores",
        body: true,
        certificate: true,
    },
];

/// What the agents' long-polls share: the machines with due jobs, and how many polls wait.
#[derive(Debug)]
pub(crate) struct Hub {
    due: watch::Sender<Arc<HashSet<String>>>,
    waiting: AtomicUsize,
    stopping: watch::Sender<bool>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Hub {
            due: watch::Sender::new(Arc::new(HashSet::new())),
            waiting: AtomicUsize::new(0),
            stopping: watch::Sender::new(false),
        }
    }

    /// Ends every waiting poll (with no jobs): the server is shutting down.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// Refreshes the set of machines with due jobs while any agent waits, until `stop`.
pub(crate) async fn watch_due(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        if state.hub.waiting.load(Ordering::SeqCst) > 0 {
            let service = state.service.clone();
            let found = tokio::task::spawn_blocking(move || {
                let now = now_ms();
                service
                    .catalog()
                    .machines_with_due_jobs(now, now.saturating_sub(JOB_LEASE_MS))
            })
            .await;
            match found {
                Ok(Ok(machines)) => {
                    state
                        .hub
                        .due
                        .send_replace(Arc::new(machines.into_iter().collect()));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "agent hub: catalog error"),
                Err(e) => tracing::warn!(error = %e, "agent hub: task failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(state.limits.runner_interval) => {}
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
}

/// Counts a waiting poll for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(value).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    state.blocking(f).await
}

/// Serves `/Agent/…` (`segments` after `Agent`). `principal` is set to `agent:NAME` for the
/// request log.
pub(crate) async fn route(
    state: &Arc<State>,
    parts: Parts,
    body: ReqBody,
    segments: &[&str],
    client_cert: Option<Arc<Vec<u8>>>,
    principal: &mut Option<String>,
) -> Result<Response<Body>, ApiError> {
    let seg: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    let method = parts.method.clone();
    if method == Method::POST && seg == ["register"] {
        let fields = read_json(&parts.headers, body, state.limits.max_body).await?;
        return register(state, &fields).await;
    }
    // Everything else: the client certificate the TLS handshake verified, checked against
    // the catalog on every request (a revocation takes effect at once).
    let cert = client_cert.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "agent endpoints need the agent's client certificate (mutual TLS)",
        )
    })?;
    let version = parts
        .headers
        .get("x-pfxkit-agent-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect::<String>();
    let cert_again = cert.clone();
    let agent = blocking(state, move |svc| {
        let agent = svc.agent_for_certificate(&cert)?;
        svc.catalog()
            .agent_seen(&agent.name, &version, now_ms(), 0, 0)?;
        Ok(agent)
    })
    .await?;
    *principal = Some(format!("agent:{}", agent.name));
    let fields = if method == Method::POST {
        read_json(&parts.headers, body, state.limits.max_body).await?
    } else {
        Fields::default()
    };
    let query = parts.uri.query().unwrap_or_default().to_string();
    match (method.as_str(), seg.as_slice()) {
        ("POST", ["hello"]) => hello(state, agent).await,
        ("GET", ["stores"]) => stores(state, agent).await,
        ("GET", ["jobs"]) => poll(state, agent, &query, cert_again).await,
        ("POST", ["jobs", id, "complete"]) => complete(state, agent, id, &fields).await,
        ("POST", ["stores", id, "inventory"]) => inventory(state, agent, id, &fields).await,
        _ => Err(ApiError::not_found(format!(
            "no agent endpoint {method} /Agent/{}",
            segments.join("/")
        ))),
    }
}

async fn register(state: &Arc<State>, f: &Fields) -> Result<Response<Body>, ApiError> {
    let name = f.required_str("Name")?.to_string();
    let token = Zeroizing::new(f.required_str("Token")?.to_string());
    let csr = Base64::decode_vec(f.required_str("Csr")?.trim())
        .map_err(|_| ApiError::bad_request("property 'Csr' must be base64 DER"))?;
    let chain = blocking(state, move |svc| {
        Ok(svc.register_agent(&name, &token, &csr)?)
    })
    .await?;
    tracing::info!(agent = %common_name(&chain), "agent registered");
    Ok(json_response(
        StatusCode::OK,
        &json!({"Certificates": chain.iter().map(|c| Base64::encode_string(c.der())).collect::<Vec<_>>()}),
    ))
}

fn common_name(chain: &[Certificate]) -> String {
    chain.first().map(Certificate::subject).unwrap_or_default()
}

/// A store as its agent needs it: never a sealed password (a machine's store has none; its
/// `env:`/`file:` reference resolves on the agent's host).
fn store_json(s: &StoreRecord) -> Value {
    json!({
        "Id": s.id,
        "StoreType": s.store_type.name(),
        "StorePath": s.path.display().to_string(),
        "KeyPath": s.key_path.as_ref().map(|p| p.display().to_string()),
        "StorePassword": match &s.password {
            StorePasswordRecord::Reference(r) => json!(r),
            _ => Value::Null,
        },
        "PlainKey": s.plain_key,
        "InventoryEverySecs": s.inventory_every(),
    })
}

async fn hello(state: &Arc<State>, agent: AgentRecord) -> Result<Response<Body>, ApiError> {
    let v = blocking(state, move |svc| {
        let released = svc.release_agent_leases(&agent.name)?;
        if released > 0 {
            tracing::info!(agent = %agent.name, released, "agent restarted: its old leases released");
        }
        let stores: Vec<Value> = svc.agent_stores(&agent.name)?.iter().map(store_json).collect();
        Ok(json!({"Agent": agent.name, "Released": released, "Stores": stores}))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &v))
}

async fn stores(state: &Arc<State>, agent: AgentRecord) -> Result<Response<Body>, ApiError> {
    let v = blocking(state, move |svc| {
        Ok(Value::Array(
            svc.agent_stores(&agent.name)?
                .iter()
                .map(store_json)
                .collect(),
        ))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &v))
}

fn query_number(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.parse().ok())
}

async fn poll(
    state: &Arc<State>,
    agent: AgentRecord,
    query: &str,
    cert: Arc<Vec<u8>>,
) -> Result<Response<Body>, ApiError> {
    let wait = Duration::from_secs(query_number(query, "wait").unwrap_or(0)).min(MAX_WAIT);
    let limit = usize::try_from(query_number(query, "limit").unwrap_or(16))
        .unwrap_or(MAX_CLAIM)
        .clamp(1, MAX_CLAIM);
    let deadline = tokio::time::Instant::now() + wait;
    let mut due = state.hub.due.subscribe();
    let mut stopping = state.hub.stopping.subscribe();
    let _waiting = Waiting::new(&state.hub.waiting);
    loop {
        let cert = cert.clone();
        // Checked again before each claim: an agent revoked while its poll waits gets nothing.
        let claim = blocking(state, move |svc| {
            let agent = svc.agent_for_certificate(&cert)?;
            Ok(svc.claim_agent_jobs(&agent.name, limit)?)
        })
        .await?;
        if !claim.jobs.is_empty() || tokio::time::Instant::now() >= deadline {
            return claim_response(&claim);
        }
        // Sleep until the hub sees a due job of ours, or the poll ends.
        loop {
            tokio::select! {
                changed = due.changed() => {
                    if changed.is_err() {
                        return claim_response(&claim);
                    }
                    if due.borrow_and_update().contains(&agent.name) {
                        break;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return claim_response(&claim);
                }
                _ = stopping.wait_for(|s| *s) => {
                    return claim_response(&claim);
                }
            }
        }
    }
}

/// The answer to a claim. The jobs' private keys and entry passwords travel here, to the lease
/// holder only, so they never enter a `serde_json::Value` (whose strings are freed unwiped): the
/// answer is written straight into one buffer sized beforehand — no reallocation leaves a copy
/// behind — and wiped when hyper drops the response body. (hyper and rustls still copy the bytes
/// through their own write buffers.)
fn claim_response(claim: &AgentClaim) -> Result<Response<Body>, ApiError> {
    let jobs: Vec<ClaimedJob<'_>> = claim
        .jobs
        .iter()
        .map(|j| ClaimedJob {
            public: json!({
                "Id": j.job.id,
                "StoreId": j.store.id,
                "Alias": j.job.job.alias,
                "Overwrite": j.job.job.overwrite,
                "Chain": j.identity.chain().iter().map(|c| Base64::encode_string(c.der())).collect::<Vec<_>>(),
                "Store": store_json(&j.store),
            }),
            key_der: j.identity.key().expose_pkcs8_der(),
            entry_password: j.entry_password.as_ref().and_then(|p| p.expose_secret()),
        })
        .collect();
    let body = write_claim(&claim.holder, &jobs)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
    let mut r = Response::new(Full::new(Bytes::from_owner(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(r)
}

/// A claimed job's answer: what may be serialized as usual, and the secrets.
struct ClaimedJob<'a> {
    public: Value,
    key_der: &'a [u8],
    entry_password: Option<&'a str>,
}

/// Bytes wiped when dropped (the owner of a claim's response body).
struct Wiped(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `{"Lease": holder, "Jobs": [...]}`, each job its public fields plus `Key` (base64 PKCS#8)
/// and `EntryPassword`, written into a buffer that never grows past the capacity reserved
/// first; `None` only if that reckoning were wrong (a bug, answered as one).
fn write_claim(holder: &str, jobs: &[ClaimedJob<'_>]) -> Option<Wiped> {
    // JSON-escaping at most sextuples a string (\u00XX); the public parts are written first,
    // unwiped, because they hold no secret.
    let public: Vec<Vec<u8>> = jobs
        .iter()
        .map(|j| serde_json::to_vec(&j.public).ok())
        .collect::<Option<_>>()?;
    let capacity = 32
        + 6 * holder.len()
        + jobs
            .iter()
            .zip(&public)
            .map(|(j, p)| {
                48 + p.len()
                    + Base64::encoded_len(j.key_der)
                    + 6 * j.entry_password.map_or(0, str::len)
            })
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    let reserved = out.capacity();
    out.extend_from_slice(b"{\"Lease\":");
    serde_json::to_writer(&mut *out, holder).ok()?;
    out.extend_from_slice(b",\"Jobs\":[");
    for (i, (job, public)) in jobs.iter().zip(&public).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Key\":\"");
        let start = out.len();
        out.resize(start + Base64::encoded_len(job.key_der), 0);
        Base64::encode(job.key_der, out.get_mut(start..)?).ok()?;
        out.extend_from_slice(b"\",\"EntryPassword\":");
        match job.entry_password {
            Some(p) => serde_json::to_writer(&mut *out, p).ok()?,
            None => out.extend_from_slice(b"null"),
        }
        out.push(b',');
        // The public object without its opening brace.
        out.extend_from_slice(public.get(1..)?);
    }
    out.extend_from_slice(b"]}");
    (out.capacity() == reserved).then_some(Wiped(out))
}

/// What an inventory found: (alias, leaf first then chain) per entry.
type Found = Vec<(String, Vec<Certificate>)>;

fn parse_inventory(f: &Fields) -> Result<Option<Found>, ApiError> {
    if f.get("Inventory").is_none() {
        return Ok(None);
    }
    let mut found = Vec::new();
    for entry in f.objects("Inventory")? {
        let alias = entry.required_str("Alias")?.to_string();
        let mut chain = Vec::new();
        for b64 in entry.strings("Chain")? {
            let der = Base64::decode_vec(&b64)
                .map_err(|_| ApiError::bad_request("inventory certificates must be base64 DER"))?;
            chain.push(Certificate::from_der(&der)?);
        }
        found.push((alias, chain));
    }
    Ok(Some(found))
}

async fn complete(
    state: &Arc<State>,
    agent: AgentRecord,
    id: &str,
    f: &Fields,
) -> Result<Response<Body>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("job id '{id}' is not a number")))?;
    let lease = f.required_str("Lease")?.to_string();
    let result = match f.required_str("Result")? {
        "Success" => JobResult::Success,
        "Warning" => JobResult::Warning,
        "Failure" => JobResult::Failure,
        other => {
            return Err(ApiError::bad_request(format!(
                "Result '{other}': Success, Warning or Failure expected"
            )));
        }
    };
    let message: String = f
        .str("Message")?
        .unwrap_or_default()
        .chars()
        .take(4096)
        .collect();
    let inventory = parse_inventory(f)?;
    let name = agent.name.clone();
    let log_message = message.clone();
    let recorded = blocking(state, move |svc| {
        Ok(svc.complete_agent_job(&name, id, &lease, result, &message, inventory.as_deref())?)
    })
    .await?;
    if !recorded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "job {id}: this lease has ended (the job was given back or taken over); the \
                 completion was not recorded"
            ),
        ));
    }
    tracing::info!(agent = %agent.name, job = id, result = result.name(), message = %log_message, "agent job finished");
    Ok(json_response(
        StatusCode::OK,
        &json!({"Id": id, "Recorded": true}),
    ))
}

async fn inventory(
    state: &Arc<State>,
    agent: AgentRecord,
    store: &str,
    f: &Fields,
) -> Result<Response<Body>, ApiError> {
    let found = parse_inventory(f)?
        .ok_or_else(|| ApiError::bad_request("property 'Inventory' is required"))?;
    let store = store.to_string();
    let entries = blocking(state, move |svc| {
        Ok(svc.report_agent_inventory(&agent.name, &store, &found)?)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &json!({"Entries": entries})))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threat: a claim's private keys and entry passwords left in freed, unwiped memory of the
    /// server (a `Value` tree, a growing buffer's earlier copies). The answer is the JSON the
    /// agents parse, written without the buffer ever growing, whatever the password holds.
    #[test]
    fn a_claim_is_written_whole_into_one_buffer_that_never_grows() {
        let key = (0u8..=255).cycle().take(1_217).collect::<Vec<u8>>();
        let nasty = "pa\"ss\\\u{1}\u{7f}wörd\n\u{0}".repeat(40);
        let jobs = [
            ClaimedJob {
                public: json!({"Id": 7, "StoreId": "s-1", "Alias": "web", "Overwrite": true,
                               "Chain": ["AAAA"], "Store": {"Id": "s-1", "KeyPath": null}}),
                key_der: &key,
                entry_password: Some(&nasty),
            },
            ClaimedJob {
                public: json!({"Id": 8, "StoreId": "s-2", "Alias": null, "Overwrite": false,
                               "Chain": [], "Store": {"Id": "s-2"}}),
                key_der: &key[..32],
                entry_password: None,
            },
        ];
        let written = write_claim("agent:web1:\u{1}holder", &jobs).expect("no growth");
        let parsed: Value = serde_json::from_slice(written.as_ref()).unwrap();
        let mut first = jobs[0].public.clone();
        first["Key"] = json!(Base64::encode_string(&key));
        first["EntryPassword"] = json!(nasty);
        let mut second = jobs[1].public.clone();
        second["Key"] = json!(Base64::encode_string(&key[..32]));
        second["EntryPassword"] = Value::Null;
        assert_eq!(
            parsed,
            json!({"Lease": "agent:web1:\u{1}holder", "Jobs": [first, second]})
        );
        assert_eq!(
            serde_json::from_slice::<Value>(write_claim("h", &[]).unwrap().as_ref()).unwrap(),
            json!({"Lease": "h", "Jobs": []})
        );
    }
}
