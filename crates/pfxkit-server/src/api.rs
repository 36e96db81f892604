//! The endpoints: one entry function ([`handle`]) that checks headers, authenticates, routes
//! and maps every error in one place, then one thin handler per endpoint.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::State;
use crate::body::{Fields, ReqBody, read_json};
use crate::error::ApiError;
use crate::query;
use pfxkit::cert::Certificate;
use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::{StoreSpec, StoreType};
use pfxkit_catalog::ca::{KeyType, San};
use pfxkit_catalog::jobs::{JobOptions, NewCertificate, StoreOutcome, format_time};
use pfxkit_catalog::service::{CertificateRef, EnrollRequest, Service};
use pfxkit_catalog::{
    Action, CertificateRecord, JobRecord, JobResult, JobStatus, StorePasswordRecord, StoreRecord,
};

type Body = Full<Bytes>;

/// One endpoint: method, path template (under the base path), summary, and whether it takes a
/// JSON body. The router, `GET /Status/Endpoints` and `openapi.json` all read this table.
pub(crate) struct Endpoint {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) body: bool,
}

macro_rules! endpoints {
    ($($method:literal $path:literal $body:literal $summary:literal;)*) => {
        pub(crate) const ENDPOINTS: &[Endpoint] = &[
            $(Endpoint { method: $method, path: $path, summary: $summary, body: $body },)*
        ];
    };
}

endpoints! {
    "POST" "/Enrollment/PFX" true "Enroll for a PFX (key generated and staged)";
    "POST" "/Enrollment/PFX/Deploy" true "Schedule jobs putting a certificate into stores";
    "POST" "/Enrollment/PFX/Replace" true "Replace a certificate wherever it is located";
    "POST" "/Enrollment/Renew" true "Issue a certificate like an existing one";
    "GET" "/Certificates" false "Query certificates";
    "GET" "/Certificates/{id}" false "A certificate, optionally with its locations";
    "GET" "/Certificates/Locations/{id}" false "Where a certificate is located";
    "POST" "/Certificates/Download" true "Download a certificate (PEM, DER or P7B)";
    "GET" "/CertificateStores" false "Stores the caller may read";
    "POST" "/CertificateStores" true "Register a store";
    "GET" "/CertificateStores/{id}" false "A store";
    "GET" "/CertificateStores/{id}/Inventory" false "Inventory a store now and list its entries";
    "POST" "/CertificateStores/Certificates/Add" true "Schedule jobs adding a certificate to stores";
    "POST" "/CertificateStores/Certificates/Remove" true "Schedule jobs removing entries from stores";
    "GET" "/CertificateStoreTypes" false "The store types";
    "GET" "/CertificateStoreContainers" false "Store containers";
    "POST" "/CertificateStoreContainers" true "Create a store container";
    "GET" "/OrchestratorJobs/JobHistory" false "Jobs that have run or are running";
    "GET" "/OrchestratorJobs/ScheduledJobs" false "Jobs waiting for their time";
    "GET" "/Status/Endpoints" false "The endpoints served";
}

/// The per-request context the log line needs.
#[derive(Default)]
struct Ctx {
    principal: Option<String>,
}

/// Serves one request; never fails (every error becomes a response).
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<ReqBody>,
    peer: SocketAddr,
    client_cert: Option<Arc<Vec<u8>>>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(256).collect();
    let mut ctx = Ctx::default();
    let outcome = tokio::time::timeout(
        state.limits.request_timeout,
        route(&state, req, peer, client_cert, &mut ctx),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request took too long",
        ))
    });
    let response = match outcome {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        principal = ctx.principal.as_deref().unwrap_or("-"),
        peer = %peer.ip(),
        duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.status, &e.body());
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"pfxkit\""),
        );
    }
    r
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn ok(value: &Value) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

/// The path under the base path (`/KeyfactorAPI` or `/Keyfactor/API`, any case).
fn strip_base(path: &str) -> Option<&str> {
    for base in ["/keyfactorapi", "/keyfactor/api"] {
        if let Some(head) = path.get(..base.len())
            && head.eq_ignore_ascii_case(base)
        {
            let rest = path.get(base.len()..).unwrap_or_default();
            if rest.is_empty() || rest.starts_with('/') {
                return Some(rest);
            }
        }
    }
    None
}

/// Matches `segments` against a template such as `/Certificates/{id}` (case-insensitively);
/// the `{…}` values.
fn match_template<'a>(template: &str, segments: &[&'a str]) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in parts.iter().zip(segments) {
        if p.starts_with('{') {
            params.push(*s);
        } else if !p.eq_ignore_ascii_case(s) {
            return None;
        }
    }
    Some(params)
}

async fn route(
    state: &Arc<State>,
    req: Request<ReqBody>,
    peer: SocketAddr,
    client_cert: Option<Arc<Vec<u8>>>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = req.into_parts();
    let Some(rest) = strip_base(parts.uri.path()) else {
        return Err(ApiError::not_found(
            "not found: the API is under /KeyfactorAPI",
        ));
    };
    let rest = rest.to_string();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // The agents' endpoints authenticate by client certificate, not by user credentials.
    if let Some((first, tail)) = segments.split_first()
        && first.eq_ignore_ascii_case("Agent")
    {
        return crate::agent::route(state, parts, body, tail, client_cert, &mut ctx.principal)
            .await;
    }
    // The document describing the API is public, like Keyfactor's Swagger page.
    if parts.method == Method::GET && match_template("/openapi.json", &segments).is_some() {
        return ok(&crate::openapi::document());
    }
    let mut endpoint = None;
    let mut path_allowed = false;
    for e in ENDPOINTS {
        if let Some(params) = match_template(e.path, &segments) {
            path_allowed = true;
            if e.method == parts.method.as_str() {
                endpoint = Some((e, params));
                break;
            }
        }
    }
    let Some((endpoint, params)) = endpoint else {
        return Err(if path_allowed {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        } else {
            ApiError::not_found(format!("no endpoint {rest}"))
        });
    };
    let requested_with = parts
        .headers
        .get("x-keyfactor-requested-with")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !requested_with.eq_ignore_ascii_case("APIClient") {
        return Err(ApiError::bad_request(
            "the header X-Keyfactor-Requested-With: APIClient is required",
        ));
    }
    let principal =
        crate::auth::authenticate(state, parts.headers.get(header::AUTHORIZATION), peer.ip())
            .await?;
    ctx.principal = Some(principal.clone());
    let fields = if endpoint.body {
        read_json(&parts.headers, body, state.limits.max_body).await?
    } else {
        Fields::default()
    };
    let query = Query::parse(parts.uri.query().unwrap_or_default());
    let req = Req {
        state: state.clone(),
        principal,
        headers: parts.headers,
        query,
        fields,
        params: params.into_iter().map(str::to_string).collect(),
    };
    match (endpoint.method, endpoint.path) {
        ("POST", "/Enrollment/PFX") => enroll(req).await,
        ("POST", "/Enrollment/PFX/Deploy") => deploy(req).await,
        ("POST", "/Enrollment/PFX/Replace") => replace(req).await,
        ("POST", "/Enrollment/Renew") => renew(req).await,
        ("GET", "/Certificates") => certificates(req).await,
        ("GET", "/Certificates/{id}") => certificate(req).await,
        ("GET", "/Certificates/Locations/{id}") => locations(req).await,
        ("POST", "/Certificates/Download") => download(req).await,
        ("GET", "/CertificateStores") => stores(req).await,
        ("POST", "/CertificateStores") => add_store(req).await,
        ("GET", "/CertificateStores/{id}") => store(req).await,
        ("GET", "/CertificateStores/{id}/Inventory") => inventory(req).await,
        ("POST", "/CertificateStores/Certificates/Add") => add_to_stores(req).await,
        ("POST", "/CertificateStores/Certificates/Remove") => remove_from_stores(req).await,
        ("GET", "/CertificateStoreTypes") => store_types(req),
        ("GET", "/CertificateStoreContainers") => containers(req).await,
        ("POST", "/CertificateStoreContainers") => add_container(req).await,
        ("GET", "/OrchestratorJobs/JobHistory") => jobs(req, false).await,
        ("GET", "/OrchestratorJobs/ScheduledJobs") => jobs(req, true).await,
        ("GET", "/Status/Endpoints") => ok(&json!(
            ENDPOINTS
                .iter()
                .map(|e| format!("{} /KeyfactorAPI{}", e.method, e.path))
                .collect::<Vec<_>>()
        )),
        _ => Err(ApiError::not_found(format!("no endpoint {rest}"))),
    }
}

/// Query parameters, names matched case-insensitively with and without the `pq.` prefix.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Self {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .take(64)
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| {
                let k = k.strip_prefix("pq.").unwrap_or(k);
                k.eq_ignore_ascii_case(name)
            })
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" || v.is_empty() => Ok(false),
            Some(_) => Err(ApiError::bad_request(format!(
                "query parameter '{name}' must be true or false"
            ))),
        }
    }

    /// `(page from 1, limit)`.
    fn paging(&self, max: usize) -> Result<(usize, usize), ApiError> {
        let number = |name: &str, default: usize| -> Result<usize, ApiError> {
            match self.get(name) {
                None | Some("") => Ok(default),
                Some(v) => v.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "query parameter '{name}' must be a non-negative integer"
                    ))
                }),
            }
        };
        let page = number("pageReturned", 1)?.max(1);
        let limit = number("returnLimit", 50)?;
        let limit = if limit == 0 { 50 } else { limit.min(max) };
        Ok((page, limit))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed, authenticated request.
struct Req {
    state: Arc<State>,
    principal: String,
    headers: HeaderMap,
    query: Query,
    fields: Fields,
    params: Vec<String>,
}

impl Req {
    /// Runs catalog work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.state.blocking(f).await
    }

    fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn upper(hex: &str) -> String {
    hex.to_ascii_uppercase()
}

/// The CN of an RFC 4514 subject, or "".
fn common_name(dn: &str) -> String {
    dn.split(',')
        .filter_map(|rdn| {
            let (k, v) = rdn.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("CN")
                .then(|| v.trim().to_string())
        })
        .next()
        .unwrap_or_default()
}

/// Asks the catalog's one decision function (`Service::authorize`).
fn authorize(svc: &Service, principal: &str, action: Action<'_>) -> Result<(), ApiError> {
    Ok(svc.authorize(Some(principal), action)?)
}

fn random_password() -> Result<Password, ApiError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 16]);
    getrandom::fill(bytes.as_mut())
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no randomness"))?;
    Ok(Password::new(pfxkit::cert::hex_lower(bytes.as_ref())))
}

fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("{what} must be an integer, not '{text}'")))
}

// ---- Enrollment ----

fn key_type_of(f: &Fields) -> Result<KeyType, ApiError> {
    let kind = f.str("KeyType")?.unwrap_or("ECC").to_ascii_uppercase();
    let length = f.int("KeyLength")?;
    let curve = f.str("Curve")?.map(str::to_ascii_lowercase);
    Ok(match (kind.as_str(), length, curve.as_deref()) {
        ("RSA", None | Some(2048), _) => KeyType::Rsa2048,
        ("RSA", Some(3072), _) => KeyType::Rsa3072,
        ("RSA", Some(4096), _) => KeyType::Rsa4096,
        (
            "ECC" | "EC" | "ECDSA",
            _,
            None | Some("p-256" | "p256" | "secp256r1" | "1.2.840.10045.3.1.7"),
        ) => KeyType::EcP256,
        ("ECC" | "EC" | "ECDSA", _, Some("p-384" | "p384" | "secp384r1" | "1.3.132.0.34")) => {
            KeyType::EcP384
        }
        ("ED25519", _, _) => KeyType::Ed25519,
        _ => {
            return Err(ApiError::bad_request(
                "unsupported key: KeyType RSA (KeyLength 2048, 3072, 4096), ECC (Curve P-256, P-384) or Ed25519",
            ));
        }
    })
}

fn sans_of(f: &Fields) -> Result<Vec<San>, ApiError> {
    let Some(sans) = f.object("SANs")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, value) in &sans.0 {
        let Value::Array(items) = value else {
            return Err(ApiError::bad_request(format!(
                "SANs.{key} must be an array of strings"
            )));
        };
        for item in items {
            let text = item.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("SANs.{key} must be an array of strings"))
            })?;
            let san = match key.to_ascii_lowercase().as_str() {
                "dns" => San::Dns(text.to_string()),
                "ip" | "ip4" | "ip6" => San::Ip(text.parse().map_err(|_| {
                    ApiError::bad_request(format!("SANs.{key}: '{text}' is not an IP address"))
                })?),
                "email" | "rfc822" => San::Email(text.to_string()),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "SANs.{other} is not supported (dns, ip4, ip6, email, rfc822)"
                    )));
                }
            };
            out.push(san);
        }
    }
    Ok(out)
}

async fn enroll(req: Req) -> Result<Response<Body>, ApiError> {
    let format = req.header("x-certificateformat").unwrap_or("PFX");
    if !["PFX", "STORE", "REPLACE"].contains(&format.to_ascii_uppercase().as_str()) {
        return Err(ApiError::bad_request(
            "x-certificateformat must be PFX, STORE or Replace",
        ));
    }
    let subject = req.fields.required_str("Subject")?.to_string();
    let request = EnrollRequest::new(subject)
        .sans(sans_of(&req.fields)?)
        .key_type(key_type_of(&req.fields)?);
    let chosen = req.fields.str("Password")?.filter(|p| !p.is_empty());
    let (password, shown) = match chosen {
        Some(p) => (Password::new(p), Value::Null),
        None => {
            let p = random_password()?;
            let shown = Value::from(p.expose_secret().unwrap_or_default());
            (p, shown)
        }
    };
    let principal = req.principal.clone();
    let enrolled = req
        .blocking(move |svc| Ok(svc.enroll(Some(&principal), &request, &password)?))
        .await?;
    let cert = &enrolled.certificate;
    ok(&json!({
        "CertificateInformation": {
            "SerialNumber": upper(&cert.serial_hex()),
            "IssuerDN": cert.issuer(),
            "Thumbprint": upper(&cert.sha1_hex()),
            "KeyfactorId": enrolled.certificate_id,
            "KeyfactorRequestId": enrolled.request_id,
            "Pkcs12Blob": Base64::encode_string(&enrolled.pkcs12),
            "Password": shown,
            "RequestDisposition": "ISSUED",
            "DispositionMessage": "The private key was successfully retained.",
            "EnrollmentContext": null,
            "Certificates": [],
        },
        "Metadata": {},
    }))
}

fn outcome_json(outcome: &StoreOutcome) -> Value {
    json!({
        "SuccessfulStores": outcome.successful,
        "FailedStores": outcome.failed,
        "Failures": outcome.failures,
    })
}

/// `CertificateId` or `RequestId`, exactly one.
fn new_certificate(f: &Fields) -> Result<NewCertificate, ApiError> {
    match (f.int("CertificateId")?, f.int("RequestId")?) {
        (Some(c), None) => Ok(NewCertificate::Certificate(c)),
        (None, Some(r)) => Ok(NewCertificate::Request(r)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give CertificateId or RequestId, not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            "CertificateId or RequestId is required",
        )),
    }
}

fn job_time(f: &Fields) -> Result<Option<String>, ApiError> {
    let t = f.str("JobTime")?.map(str::to_string);
    if let Some(t) = &t {
        pfxkit_catalog::jobs::parse_time(t)?;
    }
    Ok(t)
}

async fn deploy(req: Req) -> Result<Response<Body>, ApiError> {
    let f = &req.fields;
    let which = new_certificate(f)?;
    let password = f.str("Password")?.map(Password::new);
    let time = job_time(f)?;
    // (store, alias, overwrite): `StoreIds` use no alias; `Stores` name theirs.
    let mut targets: Vec<(String, Option<String>, bool)> = f
        .strings("StoreIds")?
        .into_iter()
        .map(|s| (s, None, false))
        .collect();
    for s in f.objects("Stores")? {
        targets.push((
            s.required_str("StoreId")?.to_string(),
            s.str("Alias")?.map(str::to_string),
            s.bool("Overwrite")?.unwrap_or(false),
        ));
    }
    if targets.is_empty() {
        return Err(ApiError::bad_request("StoreIds or Stores is required"));
    }
    let principal = req.principal.clone();
    let outcome = req
        .blocking(move |svc| {
            // Deploy asks the service, which checks ownership or `recover` (UseKey).
            let id = resolve_new(svc, which)?;
            let default_alias = default_alias(svc, id)?;
            // Stores sharing an alias and overwrite flag are one Deploy each.
            let mut groups: BTreeMap<(Option<String>, bool), Vec<String>> = BTreeMap::new();
            for (store, alias, overwrite) in targets {
                let alias = alias.unwrap_or_else(|| default_alias.clone());
                groups
                    .entry((Some(alias), overwrite))
                    .or_default()
                    .push(store);
            }
            let options = JobOptions::new(password.as_ref(), time.as_deref(), Some(&principal));
            let mut all = StoreOutcome::default();
            for ((alias, overwrite), stores) in groups {
                let o = svc.deploy(id, &stores, alias.as_deref(), overwrite, &options)?;
                all.successful.extend(o.successful);
                all.failed.extend(o.failed);
                all.failures.extend(o.failures);
            }
            Ok(all)
        })
        .await?;
    ok(&outcome_json(&outcome))
}

/// The alias of a certificate deployed without one (Deploy's `StoreIds`, Add without `Alias`):
/// its thumbprint, as Keyfactor's remote-file store types name such an entry. PKCS#12 and JKS
/// entries need an alias, and a job without one would fail when it runs.
fn default_alias(svc: &Service, id: i64) -> Result<String, ApiError> {
    let record = svc
        .catalog()
        .certificate(id)?
        .ok_or_else(|| ApiError::bad_request(format!("unknown certificate id {id}")))?;
    Ok(upper(&record.certificate.sha1_hex()))
}

fn resolve_new(svc: &Service, which: NewCertificate) -> Result<i64, ApiError> {
    Ok(match which {
        NewCertificate::Certificate(id) => {
            svc.catalog()
                .certificate(id)?
                .ok_or_else(|| ApiError::bad_request(format!("unknown certificate id {id}")))?
                .id
        }
        NewCertificate::Request(r) => {
            svc.catalog()
                .certificate_by_request(r)?
                .ok_or_else(|| ApiError::bad_request(format!("unknown request id {r}")))?
                .id
        }
        _ => {
            return Err(ApiError::bad_request(
                "CertificateId or RequestId is required",
            ));
        }
    })
}

async fn replace(req: Req) -> Result<Response<Body>, ApiError> {
    let f = &req.fields;
    let existing = f
        .int("ExistingCertificateId")?
        .ok_or_else(|| ApiError::bad_request("property 'ExistingCertificateId' is required"))?;
    let which = new_certificate(f)?;
    let password = f.str("Password")?.map(Password::new);
    let time = job_time(f)?;
    let principal = req.principal.clone();
    let outcome = req
        .blocking(move |svc| {
            let id = resolve_new(svc, which)?;
            authorize(svc, &principal, Action::UseKey(id))?;
            let options = JobOptions::new(password.as_ref(), time.as_deref(), Some(&principal));
            Ok(svc.replace(existing, NewCertificate::Certificate(id), &options)?)
        })
        .await?;
    ok(&outcome_json(&outcome))
}

async fn renew(req: Req) -> Result<Response<Body>, ApiError> {
    let f = &req.fields;
    let which = match (f.int("CertificateId")?, f.str("Thumbprint")?) {
        (Some(id), None) => CertificateRef::Id(id),
        (None, Some(t)) => CertificateRef::Thumbprint(t.to_ascii_lowercase()),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give CertificateId or Thumbprint, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "CertificateId or Thumbprint is required",
            ));
        }
    };
    let principal = req.principal.clone();
    let renewed = req
        .blocking(move |svc| Ok(svc.renew(Some(&principal), &which, &random_password()?)?))
        .await?;
    let cert = &renewed.certificate;
    ok(&json!({
        "KeyfactorId": renewed.certificate_id,
        "KeyfactorRequestId": renewed.request_id,
        "Thumbprint": upper(&cert.sha1_hex()),
        "SerialNumber": upper(&cert.serial_hex()),
        "IssuerDN": cert.issuer(),
        "RequestDisposition": "ISSUED",
        "DispositionMessage": "Renewed; not deployed.",
    }))
}

// ---- Certificates ----

fn millis(unix: u64) -> i64 {
    i64::try_from(unix)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

fn store_type_id(t: StoreType) -> i64 {
    match t {
        StoreType::Pem => 101,
        StoreType::Pkcs12 => 102,
        _ => 103,
    }
}

fn store_type_short(t: StoreType) -> &'static str {
    match t {
        StoreType::Pem => "RFPEM",
        StoreType::Pkcs12 => "RFPkcs12",
        _ => "RFJKS",
    }
}

const STORE_TYPES: [StoreType; 3] = [StoreType::Pem, StoreType::Pkcs12, StoreType::Jks];

fn certificate_json(
    record: &CertificateRecord,
    locations: Option<&[(StoreRecord, String)]>,
    machine: &str,
) -> Value {
    let cert: &Certificate = &record.certificate;
    let subject = cert.subject();
    let mut v = json!({
        "Id": record.id,
        "Thumbprint": upper(&cert.sha1_hex()),
        "SerialNumber": upper(&cert.serial_hex()),
        "IssuedDN": subject,
        "IssuedCN": common_name(&subject),
        "IssuerDN": cert.issuer(),
        "NotBefore": format_time(millis(cert.not_before_unix())),
        "NotAfter": format_time(millis(cert.not_after_unix())),
        "HasPrivateKey": record.has_staged_key,
        "CertState": 1,
    });
    if let Some(obj) = v.as_object_mut() {
        let key = key_info(cert);
        obj.insert("KeyType".into(), Value::from(key.kind));
        obj.insert("KeyTypeString".into(), Value::from(key.name));
        if let Some(bits) = key.bits {
            obj.insert("KeySizeInBits".into(), Value::from(bits));
        }
        if let Some(curve) = key.curve {
            obj.insert("Curve".into(), Value::from(curve));
        }
    }
    if let (Some(locations), Some(obj)) = (locations, v.as_object_mut()) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (store, _) in locations {
            *counts
                .entry(store_type_short(store.store_type))
                .or_default() += 1;
        }
        obj.insert(
            "LocationsCount".into(),
            json!(
                counts
                    .iter()
                    .map(|(t, c)| json!({"Type": t, "Count": c}))
                    .collect::<Vec<_>>()
            ),
        );
        obj.insert(
            "Locations".into(),
            json!(
                locations
                    .iter()
                    .map(|(s, alias)| location_json(s, alias, machine))
                    .collect::<Vec<_>>()
            ),
        );
    }
    v
}

/// A certificate's key as Keyfactor describes it.
struct KeyInfo {
    /// Keyfactor's v1 `KeyType` enumeration: 0 Unknown, 1 RSA, 2 DSA, 3 ECC, 4 DH. The v1
    /// client rejects any other number, so a key outside it (Ed25519) is 0 with its name in
    /// `KeyTypeString`.
    kind: i64,
    name: &'static str,
    bits: Option<u32>,
    /// The curve's OID, as Keyfactor's `Curve` field gives it.
    curve: Option<&'static str>,
}

fn key_info(cert: &Certificate) -> KeyInfo {
    use pfxkit::secret::oids;
    let unknown = KeyInfo {
        kind: 0,
        name: "Unknown",
        bits: None,
        curve: None,
    };
    cert.with_public_key(|spki| {
        let oid = spki.algorithm.oid;
        let params = spki.algorithm.parameters.map(|p| p.value());
        Ok(if oid == oids::RSA || oid == oids::RSA_PSS {
            KeyInfo {
                kind: 1,
                name: "RSA",
                bits: pfxkit::secret::rsa_modulus_bits(spki.subject_public_key.raw_bytes()),
                curve: None,
            }
        } else if oid == oids::DSA {
            KeyInfo {
                kind: 2,
                name: "DSA",
                ..unknown
            }
        } else if oid == oids::EC {
            let (bits, curve) = match params {
                Some(p) if p == oids::P256.as_bytes() => (Some(256), Some("1.2.840.10045.3.1.7")),
                Some(p) if p == oids::P384.as_bytes() => (Some(384), Some("1.3.132.0.34")),
                Some(p) if p == oids::P521.as_bytes() => (Some(521), Some("1.3.132.0.35")),
                _ => (None, None),
            };
            KeyInfo {
                kind: 3,
                name: "ECC",
                bits,
                curve,
            }
        } else if oid == oids::ED25519 {
            KeyInfo {
                name: "Ed25519",
                bits: Some(256),
                ..unknown
            }
        } else {
            unknown
        })
    })
    .unwrap_or(KeyInfo {
        kind: 0,
        name: "Unknown",
        bits: None,
        curve: None,
    })
}

fn location_json(store: &StoreRecord, alias: &str, machine: &str) -> Value {
    json!({
        "StoreMachine": machine,
        "StorePath": store.path.display().to_string(),
        "StoreType": store_type_id(store.store_type),
        "Alias": alias,
        "ChainLevel": 0,
        "CertStoreId": store.id,
    })
}

/// The locations of a certificate in stores the principal may read.
fn readable_locations(
    svc: &Service,
    principal: &str,
    id: i64,
) -> Result<Vec<(StoreRecord, String)>, ApiError> {
    let mut out = Vec::new();
    for l in svc.catalog().locations(id)? {
        if let Some(store) = svc.catalog().store(&l.store_id)?
            && authorize(svc, principal, Action::ReadStore(&store)).is_ok()
        {
            out.push((store, l.alias));
        }
    }
    Ok(out)
}

async fn certificate(req: Req) -> Result<Response<Body>, ApiError> {
    let id = parse_id(req.param(0), "the certificate id")?;
    let with_locations = req.query.flag("includeLocations")?;
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let v = req
        .blocking(move |svc| {
            authorize(svc, &principal, Action::ReadCertificates)?;
            let record = svc
                .catalog()
                .certificate(id)?
                .ok_or_else(|| ApiError::not_found(format!("unknown certificate id {id}")))?;
            let locations = if with_locations {
                Some(readable_locations(svc, &principal, id)?)
            } else {
                None
            };
            Ok(certificate_json(&record, locations.as_deref(), &machine))
        })
        .await?;
    ok(&v)
}

fn paged(items: Vec<Value>, page: usize, limit: usize) -> Result<Response<Body>, ApiError> {
    let total = items.len();
    let start = (page - 1).saturating_mul(limit);
    let slice: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let mut r = json_response(StatusCode::OK, &Value::Array(slice));
    r.headers_mut()
        .insert("X-Total-Count", HeaderValue::from(total as u64));
    Ok(r)
}

async fn certificates(req: Req) -> Result<Response<Body>, ApiError> {
    let clauses = query::parse(req.query.get("queryString").unwrap_or_default())?;
    let (page, limit) = req.query.paging(req.state.limits.max_page)?;
    let with_locations = req.query.flag("includeLocations")?;
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let items = req
        .blocking(move |svc| {
            authorize(svc, &principal, Action::ReadCertificates)?;
            // `CertRequestId -eq N` names one certificate.
            let mut request_ids = Vec::new();
            for c in &clauses {
                if c.field == query::Field::CertRequestId {
                    if c.op != query::Op::Eq {
                        return Err(ApiError::bad_request(
                            "pq.queryString: CertRequestId supports -eq only",
                        ));
                    }
                    let r = c.value.parse::<i64>().unwrap_or_default();
                    request_ids.push(svc.catalog().certificate_by_request(r)?.map(|c| c.id));
                }
            }
            // `NotAfter -le T` (or `-lt`) asks what `pfxkit expiring` answers: the certificates
            // in stores that expire by T (a Replace's candidates), not CA certificates or ones
            // never placed. The catalog answers that with one query.
            let expiring_by = clauses
                .iter()
                .filter(|c| {
                    c.field == query::Field::NotAfter
                        && matches!(c.op, query::Op::Le | query::Op::Lt)
                })
                .filter_map(|c| pfxkit_catalog::jobs::parse_time(&c.value).ok())
                .min();
            let records = match expiring_by {
                Some(by_ms) => {
                    let mut located: Vec<_> = svc
                        .catalog()
                        .expiring(by_ms.div_euclid(1000))?
                        .into_iter()
                        .map(|e| e.record)
                        .collect();
                    located.sort_by_key(|r| r.id);
                    located
                }
                None => svc.catalog().certificates()?,
            };
            let mut out = Vec::new();
            for record in records {
                if request_ids.iter().any(|r| *r != Some(record.id)) {
                    continue;
                }
                let cert = &record.certificate;
                let subject = cert.subject();
                let thumb = upper(&cert.sha1_hex());
                let serial = upper(&cert.serial_hex());
                let s = query::Subject {
                    id: record.id,
                    thumbprint: &thumb,
                    serial: &serial,
                    issued_cn: &common_name(&subject),
                    issued_dn: &subject,
                    issuer_dn: &cert.issuer(),
                    not_before_ms: millis(cert.not_before_unix()),
                    not_after_ms: millis(cert.not_after_unix()),
                };
                if clauses.iter().all(|c| query::matches(c, &s)) {
                    let locations = if with_locations {
                        Some(readable_locations(svc, &principal, record.id)?)
                    } else {
                        None
                    };
                    out.push(certificate_json(&record, locations.as_deref(), &machine));
                }
            }
            Ok(out)
        })
        .await?;
    paged(items, page, limit)
}

async fn locations(req: Req) -> Result<Response<Body>, ApiError> {
    let id = parse_id(req.param(0), "the certificate id")?;
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let v = req
        .blocking(move |svc| {
            authorize(svc, &principal, Action::ReadCertificates)?;
            svc.catalog()
                .certificate(id)?
                .ok_or_else(|| ApiError::not_found(format!("unknown certificate id {id}")))?;
            let locations = readable_locations(svc, &principal, id)?;
            // Keyfactor's CertificateLocationsResponse: `Details` is a list of groups, one per
            // store type (the v1 client iterates it as a list).
            let mut groups: BTreeMap<i64, (StoreType, Vec<Value>)> = BTreeMap::new();
            for (s, alias) in &locations {
                groups
                    .entry(store_type_id(s.store_type))
                    .or_insert_with(|| (s.store_type, Vec::new()))
                    .1
                    .push(json!({
                        "StoreId": s.id,
                        "StoreTypeId": store_type_id(s.store_type),
                        "ClientMachine": machine,
                        "StorePath": s.path.display().to_string(),
                        "Alias": alias,
                    }));
            }
            let details: Vec<Value> = groups
                .into_iter()
                .map(|(_, (t, l))| {
                    json!({
                        "StoreType": store_type_short(t),
                        "StoreTypeId": store_type_id(t),
                        "StoreCount": l.len(),
                        "Locations": l,
                    })
                })
                .collect();
            Ok(json!({"Details": details}))
        })
        .await?;
    ok(&v)
}

async fn download(req: Req) -> Result<Response<Body>, ApiError> {
    let format = req
        .header("x-certificateformat")
        .unwrap_or("PEM")
        .to_ascii_uppercase();
    if !["PEM", "DER", "P7B"].contains(&format.as_str()) {
        return Err(ApiError::bad_request(
            "x-certificateformat must be PEM, DER or P7B here",
        ));
    }
    let f = &req.fields;
    let id = match (f.int("CertID")?, f.str("Thumbprint")?) {
        (Some(id), _) => CertificateRef::Id(id),
        (None, Some(t)) => CertificateRef::Thumbprint(t.to_ascii_lowercase()),
        (None, None) => return Err(ApiError::bad_request("CertID is required")),
    };
    let chain = f.bool("IncludeChain")?.unwrap_or(false);
    // ChainOrder: "EndEntityFirst" (default) or "RootFirst".
    let root_first = f
        .str("ChainOrder")?
        .is_some_and(|o| o.eq_ignore_ascii_case("RootFirst"));
    let principal = req.principal.clone();
    let content = req
        .blocking(move |svc| {
            authorize(svc, &principal, Action::ReadCertificates)?;
            let record = match svc.certificate(&id) {
                Ok(r) => r,
                Err(pfxkit_catalog::Error::Invalid(m)) => return Err(ApiError::not_found(m)),
                Err(e) => return Err(e.into()),
            };
            let mut certs = vec![record.certificate.clone()];
            if chain {
                certs.extend(svc.chain_of(&record)?);
            }
            if root_first {
                certs.reverse();
            }
            Ok(if format == "DER" {
                record.certificate.der().to_vec()
            } else if format == "P7B" {
                p7b(&certs)
            } else {
                certs
                    .iter()
                    .map(pfxkit::pem::encode_certificate)
                    .collect::<String>()
                    .into_bytes()
            })
        })
        .await?;
    ok(&json!({"Content": Base64::encode_string(&content)}))
}

/// A degenerate PKCS#7 / CMS SignedData holding only `certs` (RFC 5652 §5; what `openssl
/// crl2pkcs7 -nocrl` writes and Keyfactor's P7B download is): version 1, no digest algorithms,
/// empty `data` content, the certificates, no signers. DER.
fn p7b(certs: &[Certificate]) -> Vec<u8> {
    use pfxkit::asn1::enc;
    // 1.2.840.113549.1.7.2 (signedData) and 1.2.840.113549.1.7.1 (data), DER content octets.
    const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    const OID: u8 = 0x06;
    let ders: Vec<&[u8]> = certs.iter().map(Certificate::der).collect();
    let signed_data = enc::seq(&[
        &enc::uint(1),
        &enc::set(&[]),
        &enc::seq(&[&enc::tlv(OID, DATA)]),
        // certificates [0] IMPLICIT SET OF Certificate: constructed context tag 0.
        &enc::explicit0(&ders.concat()),
        &enc::set(&[]),
    ]);
    enc::seq(&[&enc::tlv(OID, SIGNED_DATA), &enc::explicit0(&signed_data)])
}

// ---- Stores ----

fn store_json(store: &StoreRecord, machine: &str, container: Option<&str>) -> Value {
    let mut properties = serde_json::Map::new();
    if let Some(k) = &store.key_path {
        properties.insert(
            "SeparatePrivateKeyFilePath".into(),
            json!(k.display().to_string()),
        );
    }
    if store.plain_key {
        properties.insert("PlainKey".into(), json!(true));
    }
    if let Some(every) = store.inventory_every_secs {
        properties.insert("InventoryEverySecs".into(), json!(every));
    }
    let properties = Value::Object(properties).to_string();
    json!({
        "Id": store.id,
        "ContainerId": store.container_id,
        "ContainerName": container,
        "ClientMachine": store.machine.as_deref().unwrap_or(machine),
        "StorePath": store.path.display().to_string(),
        "CertStoreType": store_type_id(store.store_type),
        "Approved": true,
        "CreateIfMissing": false,
        "Properties": properties,
        "PasswordStored": !matches!(store.password, StorePasswordRecord::None),
    })
}

fn container_name(svc: &Service, id: Option<i64>) -> Result<Option<String>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    Ok(svc
        .catalog()
        .containers()?
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.name))
}

async fn stores(req: Req) -> Result<Response<Body>, ApiError> {
    let (page, limit) = req.query.paging(req.state.limits.max_page)?;
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let items = req
        .blocking(move |svc| {
            let containers = svc.catalog().containers()?;
            let mut out = Vec::new();
            for s in svc.catalog().stores()? {
                if authorize(svc, &principal, Action::ReadStore(&s)).is_ok() {
                    let name = containers
                        .iter()
                        .find(|c| Some(c.id) == s.container_id)
                        .map(|c| c.name.as_str());
                    out.push(store_json(&s, &machine, name));
                }
            }
            Ok(out)
        })
        .await?;
    paged(items, page, limit)
}

fn readable_store(svc: &Service, principal: &str, id: &str) -> Result<StoreRecord, ApiError> {
    let store = svc
        .catalog()
        .store(id)?
        .ok_or_else(|| ApiError::not_found(format!("unknown store {id}")))?;
    authorize(svc, principal, Action::ReadStore(&store))?;
    Ok(store)
}

async fn store(req: Req) -> Result<Response<Body>, ApiError> {
    let id = req.param(0).to_string();
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let v = req
        .blocking(move |svc| {
            let s = readable_store(svc, &principal, &id)?;
            let name = container_name(svc, s.container_id)?;
            Ok(store_json(&s, &machine, name.as_deref()))
        })
        .await?;
    ok(&v)
}

async fn add_store(req: Req) -> Result<Response<Body>, ApiError> {
    let f = &req.fields;
    let path = f.required_str("StorePath")?.to_string();
    let type_id = f
        .int("CertStoreType")?
        .ok_or_else(|| ApiError::bad_request("property 'CertStoreType' is required"))?;
    let store_type = STORE_TYPES
        .into_iter()
        .find(|t| store_type_id(*t) == type_id)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown CertStoreType {type_id} (101 RFPEM, 102 RFPkcs12, 103 RFJKS)"
            ))
        })?;
    let container = f.int("ContainerId")?;
    // Keyfactor sends Properties as a JSON string; an object is accepted too.
    let properties = match f.get("Properties") {
        None => Fields::default(),
        Some(Value::String(s)) if s.trim().is_empty() => Fields::default(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Fields(m),
            _ => return Err(ApiError::bad_request("Properties must be a JSON object")),
        },
        Some(Value::Object(m)) => Fields(m.clone()),
        Some(_) => return Err(ApiError::bad_request("Properties must be a JSON object")),
    };
    let key_path = properties
        .str("SeparatePrivateKeyFilePath")?
        .filter(|s| !s.is_empty())
        .map(std::path::PathBuf::from);
    // Only a literal secret: `env:` and `file:` references would let an API caller read the
    // server's environment and files.
    let password = match f.object("Password")? {
        Some(p) => p
            .str("SecretValue")?
            .filter(|s| !s.is_empty())
            .map(|s| PasswordSource::Literal(Password::new(s))),
        None => None,
    };
    // `ClientMachine` naming a known agent ties the store to it (fleet); any other value
    // (Keyfactor clients send a host name, often the server's) keeps a server-run store, as
    // before agents existed.
    let client_machine = f
        .str("ClientMachine")?
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let client_machine = match client_machine {
        Some(m) => {
            let name = m.clone();
            req.blocking(move |svc| Ok(svc.catalog().agent(&name)?.map(|_| m)))
                .await?
        }
        None => None,
    };
    let plain_key = properties.bool("PlainKey")?.unwrap_or(false);
    let inventory_every = properties.int("InventoryEverySecs")?;
    // A machine's store password is a reference resolved on that host (never a literal sent
    // to it with every job); an API caller cannot name the server's own variables or files.
    let password = match (&client_machine, properties.str("StorePasswordReference")?) {
        (Some(_), Some(r)) => {
            let source: PasswordSource = r.parse()?;
            if !matches!(source, PasswordSource::Env(_) | PasswordSource::File(_)) {
                return Err(ApiError::bad_request(
                    "StorePasswordReference must be env:VAR or file:PATH",
                ));
            }
            Some(source)
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "StorePasswordReference applies to stores on an agent's machine only",
            ));
        }
        (_, None) => password,
    };
    let options = pfxkit_catalog::jobs::StoreOptions::default()
        .machine(client_machine)
        .plain_key(plain_key)
        .inventory_every_secs(inventory_every);
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let v = req
        .blocking(move |svc| {
            authorize(svc, &principal, Action::Admin)?;
            let name =
                match container {
                    Some(id) => Some(container_name(svc, Some(id))?.ok_or_else(|| {
                        ApiError::bad_request(format!("unknown ContainerId {id}"))
                    })?),
                    None => None,
                };
            let record = svc.add_store_with(
                Some(&principal),
                store_type,
                std::path::Path::new(&path),
                key_path.as_deref(),
                name.as_deref(),
                password.as_ref(),
                &options,
            )?;
            Ok(store_json(&record, &machine, name.as_deref()))
        })
        .await?;
    ok(&v)
}

/// Keyfactor's `Schedule` of a store job: absent or `{"Immediate": true}` is now,
/// `{"ExactlyOnce": {"Time": T}}` is T. Recurring schedules make no sense for a one-off
/// certificate job and are refused.
fn schedule_time(f: &Fields) -> Result<Option<String>, ApiError> {
    let Some(schedule) = f.object("Schedule")? else {
        return Ok(None);
    };
    if let Some(once) = schedule.object("ExactlyOnce")? {
        let t = once.required_str("Time")?.to_string();
        pfxkit_catalog::jobs::parse_time(&t)?;
        return Ok(Some(t));
    }
    for (key, value) in &schedule.0 {
        let off = value.is_null() || *value == Value::Bool(false);
        if !key.eq_ignore_ascii_case("Immediate") && !off {
            return Err(ApiError::bad_request(format!(
                "Schedule.{key} is not supported: use Immediate or ExactlyOnce"
            )));
        }
    }
    Ok(None)
}

/// `POST /CertificateStores/Certificates/Add`: Deploy under Keyfactor's other name, answering
/// the job ids. The same checks as Deploy: `schedule` on every store (checked for all before
/// any job exists, so a refused request leaves nothing behind) and ownership of the
/// certificate or `recover`.
async fn add_to_stores(req: Req) -> Result<Response<Body>, ApiError> {
    let f = &req.fields;
    let certificate = f
        .int("CertificateId")?
        .ok_or_else(|| ApiError::bad_request("property 'CertificateId' is required"))?;
    let time = schedule_time(f)?;
    // (store, alias, overwrite, entry password)
    let mut targets = Vec::new();
    for s in f.objects("CertificateStores")? {
        let password = match s.get("EntryPassword") {
            Some(Value::String(p)) => Some(p.clone()),
            Some(Value::Object(_)) => s
                .object("EntryPassword")?
                .and_then(|p| p.str("SecretValue").ok().flatten().map(str::to_string)),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "EntryPassword must be a string or {\"SecretValue\": …}",
                ));
            }
            None => None,
        };
        targets.push((
            s.required_str("CertificateStoreId")?.to_string(),
            s.str("Alias")?
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            s.bool("Overwrite")?.unwrap_or(false),
            password.filter(|p| !p.is_empty()),
        ));
    }
    if targets.is_empty() {
        return Err(ApiError::bad_request("CertificateStores is required"));
    }
    let principal = req.principal.clone();
    let ids = req
        .blocking(move |svc| {
            svc.catalog().certificate(certificate)?.ok_or_else(|| {
                ApiError::bad_request(format!("unknown certificate id {certificate}"))
            })?;
            authorize(svc, &principal, Action::UseKey(certificate))?;
            for (store, ..) in &targets {
                let record = svc
                    .catalog()
                    .store(store)?
                    .ok_or_else(|| ApiError::bad_request(format!("unknown store {store}")))?;
                authorize(svc, &principal, Action::Schedule(&record))?;
            }
            let default_alias = default_alias(svc, certificate)?;
            let mut ids = Vec::new();
            let mut failures = Vec::new();
            for (store, alias, overwrite, password) in targets {
                let alias = Some(alias.unwrap_or_else(|| default_alias.clone()));
                let password = password.map(Password::new);
                let options = JobOptions::new(password.as_ref(), time.as_deref(), Some(&principal));
                let o = svc.deploy(
                    certificate,
                    std::slice::from_ref(&store),
                    alias.as_deref(),
                    overwrite,
                    &options,
                )?;
                ids.extend(o.job_ids.into_values().flatten());
                failures.extend(
                    o.failures
                        .into_iter()
                        .map(|(s, r)| format!("store {s}: {r}")),
                );
            }
            if !failures.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "{}; jobs created for the other stores: {ids:?}",
                    failures.join("; ")
                )));
            }
            Ok(ids)
        })
        .await?;
    ok(&json!(ids))
}

/// `POST /CertificateStores/Certificates/Remove`: a job per `{CertificateStoreId, Alias}`
/// removing that entry; answers the job ids. `schedule` on every store is checked before any
/// job exists, so a refused request leaves nothing behind.
async fn remove_from_stores(req: Req) -> Result<Response<Body>, ApiError> {
    let f = &req.fields;
    let time = schedule_time(f)?;
    let mut targets = Vec::new();
    for s in f.objects("CertificateStores")? {
        let alias = s.required_str("Alias")?;
        if alias.is_empty() {
            return Err(ApiError::bad_request("Alias must not be empty"));
        }
        targets.push((
            s.required_str("CertificateStoreId")?.to_string(),
            alias.to_string(),
        ));
    }
    if targets.is_empty() {
        return Err(ApiError::bad_request("CertificateStores is required"));
    }
    let principal = req.principal.clone();
    let ids = req
        .blocking(move |svc| {
            for (store, _) in &targets {
                let record = svc
                    .catalog()
                    .store(store)?
                    .ok_or_else(|| ApiError::bad_request(format!("unknown store {store}")))?;
                authorize(svc, &principal, Action::Schedule(&record))?;
            }
            let options = JobOptions::new(None, time.as_deref(), Some(&principal));
            let o = svc.remove(&targets, &options)?;
            let ids: Vec<i64> = o.job_ids.into_values().flatten().collect();
            if !o.failures.is_empty() {
                let failures: Vec<String> = o
                    .failures
                    .iter()
                    .map(|(s, r)| format!("store {s}: {r}"))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{}; jobs created for the other stores: {ids:?}",
                    failures.join("; ")
                )));
            }
            Ok(ids)
        })
        .await?;
    ok(&json!(ids))
}

async fn inventory(req: Req) -> Result<Response<Body>, ApiError> {
    let id = req.param(0).to_string();
    let principal = req.principal.clone();
    let v = req
        .blocking(move |svc| {
            let store = readable_store(svc, &principal, &id)?;
            let report = svc.inventory(Some(&store.id))?;
            if let Some(r) = report.first()
                && r.result == JobResult::Failure
            {
                return Err(ApiError::bad_request(format!(
                    "store {id} cannot be read: {}",
                    r.message.clone().unwrap_or_default()
                )));
            }
            let entries = svc.adapter(&store)?.inventory()?;
            let mut out = Vec::new();
            for e in entries {
                let mut certs = Vec::new();
                for c in &e.chain {
                    let known = svc.catalog().certificate_by_thumbprint(&c.sha1_hex())?;
                    certs.push(json!({
                        "Id": known.map(|k| k.id),
                        "IssuedDN": c.subject(),
                        "IssuerDN": c.issuer(),
                        "SerialNumber": upper(&c.serial_hex()),
                        "Thumbprint": upper(&c.sha1_hex()),
                        "NotBefore": format_time(millis(c.not_before_unix())),
                        "NotAfter": format_time(millis(c.not_after_unix())),
                    }));
                }
                out.push(json!({
                    "Name": e.alias,
                    "HasPrivateKey": e.has_private_key,
                    "Certificates": certs,
                    "Parameters": {},
                }));
            }
            Ok(Value::Array(out))
        })
        .await?;
    ok(&v)
}

fn store_types(_req: Req) -> Result<Response<Body>, ApiError> {
    let mut out = Vec::new();
    for t in STORE_TYPES {
        let caps = pfxkit::store::open(
            &StoreSpec::new(t, "/nonexistent").store_password(Some(Password::absent())),
        )?
        .capabilities();
        let policy = |p: &str| match p {
            "Forbidden" | "Unsupported" => 0,
            "Optional" => 1,
            _ => 2,
        };
        out.push(json!({
            "StoreType": store_type_id(t),
            "Name": format!("pfxkit {t}"),
            "ShortName": store_type_short(t),
            "LocalStore": true,
            "PrivateKeyAllowed": policy(&format!("{:?}", caps.private_keys)),
            "CustomAliasAllowed": if caps.custom_alias { 1 } else { 0 },
            "PowerShell": false,
            "BlueprintAllowed": false,
            "ServerRequired": false,
            "PasswordOptions": {
                "EntrySupported": policy(&format!("{:?}", caps.entry_password)) > 0,
                "StoreRequired": caps.store_password_required,
                "Style": 0,
            },
            "SupportedOperations": {
                "Add": true, "Create": false, "Discovery": false, "Enrollment": false,
                "Remove": false,
            },
        }));
    }
    ok(&Value::Array(out))
}

async fn containers(req: Req) -> Result<Response<Body>, ApiError> {
    let (page, limit) = req.query.paging(req.state.limits.max_page)?;
    let items = req
        .blocking(move |svc| {
            Ok(svc
                .catalog()
                .containers()?
                .into_iter()
                .map(|c| json!({"Id": c.id, "Name": c.name, "OverwriteSchedules": false}))
                .collect())
        })
        .await?;
    paged(items, page, limit)
}

async fn add_container(req: Req) -> Result<Response<Body>, ApiError> {
    let name = req.fields.required_str("Name")?.to_string();
    if name.is_empty() || name.len() > 256 {
        return Err(ApiError::bad_request("Name must have 1 to 256 bytes"));
    }
    let principal = req.principal.clone();
    let c = req
        .blocking(move |svc| Ok(svc.add_container(Some(&principal), &name)?))
        .await?;
    ok(&json!({"Id": c.id, "Name": c.name, "OverwriteSchedules": false}))
}

// ---- Jobs ----

fn job_json(job: &JobRecord, store: Option<&StoreRecord>, machine: &str) -> Value {
    let status = match job.status {
        JobStatus::Waiting => 1,
        JobStatus::InProcess => 2,
        JobStatus::Completed => 3,
        JobStatus::CompletedWillRetry => 5,
        _ => 0,
    };
    let result = match job.result {
        Some(JobResult::Success) => 2,
        Some(JobResult::Warning) => 3,
        Some(JobResult::Failure) => 4,
        _ => 0,
    };
    let mut v = json!({
        "JobHistoryId": job.id,
        "JobId": job.id,
        "JobType": "Management",
        "Operation": job.job.operation.name(),
        "Status": status,
        "Result": result,
        "Message": job.message.clone().unwrap_or_default(),
        "CertStoreId": job.job.store_id,
        "StorePath": store.map(|s| s.path.display().to_string()).unwrap_or_default(),
        "ClientMachine": machine,
        "CertificateId": job.job.certificate_id,
        "Alias": job.job.alias,
        "Requestor": job.job.principal,
    });
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "ScheduledTime".into(),
            Value::from(format_time(job.job.scheduled_ms)),
        );
        // Absent rather than null until the job has started / ended: the clients parse a
        // present date field as a date.
        if let Some(t) = job.started_ms {
            obj.insert("OperationStart".into(), Value::from(format_time(t)));
        }
        if let Some(t) = job.finished_ms {
            obj.insert("OperationEnd".into(), Value::from(format_time(t)));
        }
    }
    v
}

async fn jobs(req: Req, scheduled: bool) -> Result<Response<Body>, ApiError> {
    let (page, limit) = req.query.paging(req.state.limits.max_page)?;
    let principal = req.principal.clone();
    let machine = req.state.machine.clone();
    let items = req
        .blocking(move |svc| {
            let stores: BTreeMap<String, StoreRecord> = svc
                .catalog()
                .stores()?
                .into_iter()
                .filter(|s| authorize(svc, &principal, Action::ReadStore(s)).is_ok())
                .map(|s| (s.id.clone(), s))
                .collect();
            Ok(svc
                .catalog()
                .jobs()?
                .iter()
                .filter(|j| (j.status == JobStatus::Waiting) == scheduled)
                .filter_map(|j| {
                    let store = stores.get(&j.job.store_id)?;
                    Some(job_json(j, Some(store), &machine))
                })
                .collect())
        })
        .await?;
    paged(items, page, limit)
}
