#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! The HTTP API over real sockets and real TLS (rustls, a certificate issued by the catalog's
//! CA, trusted by the client through the exported CA chain only): every endpoint, the
//! permission table, authentication, and each class of bad input.

use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use pfxkit::secret::Password;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::service::Service;
use pfxkit_catalog::{Permission, StorePasswordRecord};
use pfxkit_server::{Server, ServerConfig, ServerLimits, tls};

struct Api {
    base: String,
    client: Client,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: pfxkit_server::Stats,
}

impl Api {
    fn catalog(&self) -> std::path::PathBuf {
        self.dir.path().join("catalog")
    }

    fn service(&self) -> Service {
        Service::open(&self.catalog()).unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: (&str, &str),
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut r = self
            .client
            .request(method, self.url(path))
            .basic_auth(user.0, Some(user.1))
            .header("X-Keyfactor-Requested-With", "APIClient");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, value)
    }

    async fn get(&self, path: &str, user: (&str, &str)) -> (StatusCode, Value) {
        let (s, _, v) = self.call(reqwest::Method::GET, path, user, None).await;
        (s, v)
    }

    async fn post(&self, path: &str, user: (&str, &str), body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(reqwest::Method::POST, path, user, Some(body))
            .await;
        (s, v)
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("graceful stop within 10 s")
                .unwrap();
        }
    }
}

const ADMIN: (&str, &str) = ("admin", "admin-password");
const READER: (&str, &str) = ("reader", "reader-password");
const NOBODY: (&str, &str) = ("nobody", "nobody-password");

/// A catalog with a CA, three users (admin: global modify; reader: global read; nobody: no
/// grant), served over TLS on a free port.
async fn start(limits: ServerLimits) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    let svc = Service::init(&cat).unwrap();
    svc.ca_init("CN=Test CA", KeyType::EcP256, None).unwrap();
    for (user, pw) in [ADMIN, READER, NOBODY] {
        svc.add_user(user, &Password::new(pw)).unwrap();
    }
    for p in [Permission::Modify, Permission::Enroll, Permission::Admin] {
        svc.grant(None, ADMIN.0, None, p).unwrap();
    }
    svc.grant(None, READER.0, None, Permission::Read).unwrap();
    let ca_pem: String = svc
        .ca_chain()
        .unwrap()
        .iter()
        .map(pfxkit::pem::encode_certificate)
        .collect();
    let listen = "127.0.0.1:0".parse().unwrap();
    let tls = tls::from_catalog_ca(&svc, "localhost", "127.0.0.1".parse().unwrap()).unwrap();
    let config = ServerConfig::new(listen, Some(tls)).limits(limits);
    let server = Server::bind(config, svc).await.unwrap();
    let base = server.base_url().unwrap();
    let stats = server.stats();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    let client = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    Api {
        base,
        client,
        dir,
        stop: Some(tx),
        task: Some(task),
        stats,
    }
}

fn fast_limits() -> ServerLimits {
    let mut l = ServerLimits::default();
    l.runner_interval = Duration::from_millis(100);
    l
}

async fn wait_for<F: Fn(&Value) -> bool>(api: &Api, path: &str, pred: F) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = api.get(path, ADMIN).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {path}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn add_pkcs12_store(api: &Api, name: &str) -> String {
    let path = api.dir.path().join(name);
    let (s, v) = api
        .post(
            "/CertificateStores",
            ADMIN,
            json!({"ClientMachine": "here", "StorePath": path, "CertStoreType": 102,
                   "Properties": "{}", "Password": {"SecretValue": "store-pw"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["Id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_deploy_renew_replace_and_locations_over_tls() {
    let api = start(fast_limits()).await;
    let (s, enrolled) = api
        .post(
            "/Enrollment/PFX",
            ADMIN,
            json!({"Subject": "CN=web01", "SANs": {"dns": ["web01"]}, "Password": "transport"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{enrolled}");
    let info = &enrolled["CertificateInformation"];
    assert_eq!(info["RequestDisposition"], "ISSUED");
    assert_eq!(
        info["Password"],
        Value::Null,
        "the caller chose the password"
    );
    let thumb = info["Thumbprint"].as_str().unwrap();
    assert_eq!(thumb, thumb.to_ascii_uppercase());
    let id = info["KeyfactorId"].as_i64().unwrap();
    // The blob opens with the caller's password.
    let blob = Base64::decode_vec(info["Pkcs12Blob"].as_str().unwrap()).unwrap();
    pfxkit::pkcs12::read(
        &blob,
        Some(&Password::new("transport")),
        &pfxkit::limits::Limits::default(),
    )
    .unwrap();

    let store = add_pkcs12_store(&api, "a.p12").await;
    // camelCase request properties, as the v11 client sends them.
    let (s, out) = api
        .post(
            "/Enrollment/PFX/Deploy",
            ADMIN,
            json!({"certificateId": id, "stores": [{"storeId": store, "alias": "web", "overwrite": false}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out["SuccessfulStores"], json!([store]));
    let path = format!("/Certificates/{id}?includeLocations=true");
    let cert = wait_for(&api, &path, |v| {
        v["Locations"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert_eq!(cert["Locations"][0]["Alias"], "web");
    assert_eq!(cert["Locations"][0]["CertStoreId"], store);
    assert_eq!(cert["Locations"][0]["StoreType"], 102);
    assert_eq!(
        cert["LocationsCount"],
        json!([{"Type": "RFPkcs12", "Count": 1}])
    );

    let (s, renewed) = api
        .post("/Enrollment/Renew", ADMIN, json!({"CertificateId": id}))
        .await;
    assert_eq!(s, StatusCode::OK, "{renewed}");
    let new_id = renewed["KeyfactorId"].as_i64().unwrap();
    // Renew never deploys.
    let (_, v) = api
        .get(
            &format!("/Certificates/{new_id}?includeLocations=true"),
            ADMIN,
        )
        .await;
    assert_eq!(v["Locations"], json!([]));

    // A Replace with a JobTime in the future (six fractional digits, as the v11 client sends)
    // is scheduled, not run.
    let in_an_hour = pfxkit_catalog::jobs::format_time(pfxkit_catalog::jobs::now_ms() + 3_600_000)
        .replace('Z', "000Z");
    let (s, out) = api
        .post(
            "/Enrollment/PFX/Replace",
            ADMIN,
            json!({"ExistingCertificateId": id, "CertificateId": new_id, "JobTime": in_an_hour}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out["SuccessfulStores"], json!([store]));
    let (_, scheduled) = api.get("/OrchestratorJobs/ScheduledJobs", ADMIN).await;
    assert_eq!(scheduled.as_array().unwrap().len(), 1, "{scheduled}");
    assert_eq!(scheduled[0]["Status"], 1);

    // Replace now: the new certificate takes the old one's place.
    let (s, out) = api
        .post(
            "/Enrollment/PFX/Replace",
            ADMIN,
            json!({"existingCertificateId": id, "requestId": renewed["KeyfactorRequestId"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let path = format!("/Certificates/{new_id}?includeLocations=true");
    let v = wait_for(&api, &path, |v| {
        v["Locations"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert_eq!(v["Locations"][0]["Alias"], "web");
    let (_, old) = api
        .get(&format!("/Certificates/{id}?includeLocations=true"), ADMIN)
        .await;
    assert_eq!(old["Locations"], json!([]));
    let (_, history) = api.get("/OrchestratorJobs/JobHistory", ADMIN).await;
    assert!(
        history.as_array().unwrap().iter().all(|j| j["Result"] == 2),
        "{history}"
    );

    // Inventory of the store shows the new certificate under the alias.
    let (s, inv) = api
        .get(&format!("/CertificateStores/{store}/Inventory"), ADMIN)
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    assert_eq!(inv[0]["Name"], "web");
    assert_eq!(
        inv[0]["Certificates"][0]["Thumbprint"],
        renewed["Thumbprint"]
    );

    // Locations endpoint and download.
    let (s, loc) = api
        .get(&format!("/Certificates/Locations/{new_id}"), ADMIN)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Keyfactor's shape: `Details` is a list of groups, one per store type (the v1 client
    // iterates it as a list).
    assert_eq!(loc["Details"][0]["StoreType"], "RFPkcs12");
    assert_eq!(loc["Details"][0]["StoreTypeId"], 102);
    assert_eq!(loc["Details"][0]["StoreCount"], 1);
    assert_eq!(loc["Details"][0]["Locations"][0]["StoreId"], store);
    assert_eq!(loc["Details"][0]["Locations"][0]["Alias"], "web");
    let (s, dl) = api
        .post(
            "/Certificates/Download",
            ADMIN,
            json!({"CertID": new_id, "IncludeChain": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dl}");
    let pem = Base64::decode_vec(dl["Content"].as_str().unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(pem)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_http2_and_both_base_paths_case_insensitively() {
    let api = start(fast_limits()).await;
    let resp = api
        .client
        .get(api.url("/CertificateStoreTypes"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("X-Keyfactor-Requested-With", "APIClient")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let types: Value = resp.json().await.unwrap();
    let names: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ShortName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["RFPEM", "RFPkcs12", "RFJKS"]);
    let other = api.base.replace("/KeyfactorAPI", "/keyfactor/api");
    let resp = api
        .client
        .get(format!("{other}/certificatestoretypes"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("x-keyfactor-requested-with", "APIClient")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_requests_without_the_keyfactor_header() {
    let api = start(fast_limits()).await;
    let resp = api
        .client
        .get(api.url("/Certificates"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("X-Keyfactor-Requested-With")
    );
    assert!(v["ErrorCode"].as_str().unwrap().starts_with("0x"));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_credentials_get_401_with_a_basic_challenge() {
    let api = start(fast_limits()).await;
    let resp = api
        .client
        .get(api.url("/Certificates"))
        .header("X-Keyfactor-Requested-With", "APIClient")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"pfxkit\"");
    let v: Value = resp.json().await.unwrap();
    assert!(v["ErrorCode"].is_string());
    let (s, v) = api.get("/Certificates", ("admin", "wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        !v.to_string().contains("wrong"),
        "the password is never echoed: {v}"
    );
    let (s, _) = api.get("/Certificates", ("ghost", "x")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // DOMAIN\user: matched whole, then without the domain.
    let (s, _) = api.get("/Certificates", ("CORP\\admin", ADMIN.1)).await;
    assert_eq!(s, StatusCode::OK);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_logins_are_slowed_down_per_user() {
    // Threat: password guessing against one user. Each failure doubles the wait before the
    // next verification for that name.
    let api = start(fast_limits()).await;
    for _ in 0..3 {
        let (s, _) = api.get("/Certificates", ("reader", "guess")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let t = Instant::now();
    let (s, _) = api.get("/Certificates", ("reader", "guess")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_verified_once_then_cached() {
    // Threat: CPU exhaustion by Argon2 on every request. Requests after the first with the
    // same credentials make no verification.
    let api = start(fast_limits()).await;
    for _ in 0..20 {
        let (s, _) = api.get("/CertificateStoreTypes", ADMIN).await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(api.stats.password_verifications(), 1);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cached_credentials_under_concurrent_requests_are_verified_once_per_slot() {
    // Threat: when cached credentials expire while many connections use them, every waiting
    // request verifying them again (Argon2 each, 19 MiB and tens of ms): a latency spike and
    // a memory burst at every expiry. Waiters take the answer of the verification made while
    // they waited.
    // The cache holds for 2 s: long enough that the burst, on a connection already open,
    // ends before the credentials verified at its start expire again on a loaded machine.
    let mut limits = fast_limits();
    limits.credential_cache = Duration::from_secs(2);
    limits.max_verifications = 2;
    let api = start(limits).await;
    let (s, _) = api.get("/CertificateStoreTypes", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let before = api.stats.password_verifications();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let request = api
            .client
            .get(api.url("/CertificateStoreTypes"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("X-Keyfactor-Requested-With", "APIClient");
        requests.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let made = api.stats.password_verifications() - before;
    assert!(made <= 2, "{made} verifications for one expired credential");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_authenticate_until_revoked() {
    let api = start(fast_limits()).await;
    let svc = api.service();
    let (id, token) = svc.add_token("reader", None).unwrap();
    let call = |t: String| {
        let req = api
            .client
            .get(api.url("/Certificates"))
            .bearer_auth(t)
            .header("X-Keyfactor-Requested-With", "APIClient");
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(call(token.to_string()).await, StatusCode::OK);
    assert_eq!(call("pfxkit_0000".into()).await, StatusCode::UNAUTHORIZED);
    svc.revoke_token(id).unwrap();
    assert_eq!(call(token.to_string()).await, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_table_is_enforced_for_each_endpoint() {
    let api = start(fast_limits()).await;
    let store = add_pkcs12_store(&api, "p.p12").await;
    let (s, e) = api
        .post("/Enrollment/PFX", ADMIN, json!({"Subject": "CN=p"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Password chosen by the server is returned.
    assert!(e["CertificateInformation"]["Password"].is_string());
    let id = e["CertificateInformation"]["KeyfactorId"].as_i64().unwrap();

    // nobody: authenticated, no grant.
    for (path, body) in [
        ("/Enrollment/PFX", json!({"Subject": "CN=x"})),
        ("/Enrollment/Renew", json!({"CertificateId": id})),
        (
            "/Enrollment/PFX/Deploy",
            json!({"CertificateId": id, "StoreIds": [store]}),
        ),
        (
            "/Enrollment/PFX/Replace",
            json!({"ExistingCertificateId": id, "CertificateId": id}),
        ),
        ("/Certificates/Download", json!({"CertID": id})),
        (
            "/CertificateStores",
            json!({"StorePath": "/tmp/x.p12", "CertStoreType": 102}),
        ),
        ("/CertificateStoreContainers", json!({"Name": "c"})),
    ] {
        let (s, v) = api.post(path, NOBODY, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert!(v["Message"].is_string());
    }
    for path in [
        format!("/Certificates/{id}"),
        "/Certificates".into(),
        format!("/CertificateStores/{store}"),
    ] {
        let (s, v) = api.get(&path, NOBODY).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
    }
    // Lists show only what the principal may read.
    let (s, v) = api.get("/CertificateStores", NOBODY).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));
    let (s, v) = api.get("/OrchestratorJobs/JobHistory", NOBODY).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));

    // reader: reads, cannot enroll or administer.
    let (s, _) = api.get(&format!("/Certificates/{id}"), READER).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api.get("/CertificateStores", READER).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (s, _) = api
        .post("/Enrollment/PFX", READER, json!({"Subject": "CN=x"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .post("/CertificateStoreContainers", READER, json!({"Name": "c"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // admin: containers.
    let (s, c) = api
        .post("/CertificateStoreContainers", ADMIN, json!({"name": "web"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let (_, list) = api.get("/CertificateStoreContainers", READER).await;
    assert_eq!(list[0]["Name"], "web");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_never_a_500() {
    let mut limits = fast_limits();
    limits.max_body = 4096;
    let api = start(limits).await;
    let send = |body: Vec<u8>, ct: &'static str| {
        let req = api
            .client
            .post(api.url("/Enrollment/PFX"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("X-Keyfactor-Requested-With", "APIClient")
            .header("Content-Type", ct)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = send(vec![b' '; 10_000], "application/json").await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (s, v) = send(b"{\"Subject\": ".to_vec(), "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["Message"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    let (s, _) = send(b"[1,2]".to_vec(), "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(b"{}".to_vec(), "text/plain").await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, v) = send(b"{\"Subject\": 5}".to_vec(), "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("'Subject' must be a string"),
        "{v}"
    );
    let (s, v) = send(b"{\"Subject\": \"not a DN\"}".to_vec(), "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = send(
        b"{\"Subject\": \"CN=x\", \"SANs\": {\"ip4\": [\"999.1.1.1\"]}}".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (s, _) = api.get("/Certificates/999999", ADMIN).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api.get("/Certificates/abc", ADMIN).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .get(
            "/CertificateStores/00000000-0000-0000-0000-000000000000",
            ADMIN,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api.get("/NoSuchThing", ADMIN).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .post(
            "/Enrollment/PFX/Replace",
            ADMIN,
            json!({"ExistingCertificateId": 1, "CertificateId": 1, "RequestId": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["Message"].as_str().unwrap().contains("not both"), "{v}");
    let (s, v) = api
        .post(
            "/Enrollment/PFX/Deploy",
            ADMIN,
            json!({"CertificateId": 1, "StoreIds": ["x"], "JobTime": "tomorrow"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = api
        .get("/Certificates?pq.queryString=IssuedCN%20-xx%201", ADMIN)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["Message"].as_str().unwrap().contains("at character 10"),
        "{v}"
    );
    let (s, _) = api.get("/Certificates?pq.returnLimit=-1", ADMIN).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_a_total_count_and_end_in_an_empty_page() {
    let api = start(fast_limits()).await;
    for i in 0..3 {
        let (s, _) = api
            .post(
                "/Enrollment/PFX",
                ADMIN,
                json!({"Subject": format!("CN=page{i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    // The CA certificate is a certificate of the catalog too: 4 in all.
    let (s, h, v) = api
        .call(
            reqwest::Method::GET,
            "/Certificates?pq.pageReturned=2&pq.returnLimit=3",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-total-count"], "4");
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (_, h, v) = api
        .call(
            reqwest::Method::GET,
            "/Certificates?PageReturned=9&ReturnLimit=3",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(v, json!([]));
    assert_eq!(h["x-total-count"], "4");
    let (_, v) = api
        .get(
            "/Certificates?pq.queryString=IssuedCN%20-eq%20%22page1%22",
            ADMIN,
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["IssuedCN"], "page1");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_exactly_the_endpoints_served() {
    let api = start(fast_limits()).await;
    let doc: Value = api
        .client
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push(format!(
                "{} /KeyfactorAPI{path}",
                method.to_ascii_uppercase()
            ));
        }
    }
    documented.sort();
    let (_, served) = api.get("/Status/Endpoints", READER).await;
    let mut served: Vec<String> = serde_json::from_value(served).unwrap();
    // The agents' endpoints are served beside the Keyfactor ones (not listed by
    // /Status/Endpoints, which is Keyfactor's), and must be documented too.
    let agent = [
        "POST /KeyfactorAPI/Agent/Register",
        "POST /KeyfactorAPI/Agent/Hello",
        "GET /KeyfactorAPI/Agent/Stores",
        "GET /KeyfactorAPI/Agent/Jobs",
        "POST /KeyfactorAPI/Agent/Jobs/{id}/Complete",
        "POST /KeyfactorAPI/Agent/Stores/{id}/Inventory",
    ];
    served.extend(agent.iter().map(|e| (*e).to_string()));
    served.sort();
    assert_eq!(documented, served);
    // Each documented agent operation is served: without a client certificate it answers 401
    // (registration, which needs none, a 400 for an empty body), never 404, and the document
    // says what it needs and answers.
    for endpoint in agent {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let url = format!("{}{}", api.base, path.trim_start_matches("/KeyfactorAPI"))
            .replace("{id}", "1");
        let request = if method == "GET" {
            api.client.get(&url)
        } else {
            api.client
                .post(&url)
                .header("content-type", "application/json")
                .body("{}")
        };
        let status = request.send().await.unwrap().status();
        let expected = if path.ends_with("/Register") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "{endpoint}");
        let op =
            &doc["paths"][path.trim_start_matches("/KeyfactorAPI")][method.to_ascii_lowercase()];
        assert_eq!(op["security"], json!([]), "{endpoint}: no user credentials");
        assert!(
            op["description"]
                .as_str()
                .unwrap()
                .contains("client certificate"),
            "{endpoint}"
        );
        let responses = op["responses"].as_object().unwrap();
        for status in ["200", "400", "401", "403"] {
            assert!(responses.contains_key(status), "{endpoint}: {status}");
        }
        let schema = &responses["200"]["content"]["application/json"]["schema"];
        assert!(
            schema.is_object() && schema != &json!({"type": "object"}),
            "{endpoint}: {schema}"
        );
    }
    // The shapes the agent reads: a job carries its key and its store.
    let job = &doc["components"]["schemas"]["AgentJob"];
    for field in ["Id", "StoreId", "Key", "Chain", "Store"] {
        assert!(job["properties"].get(field).is_some(), "AgentJob.{field}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::init(&dir.path().join("c")).unwrap();
    let config = ServerConfig::new("0.0.0.0:0".parse().unwrap(), None);
    let err = Server::bind(config, svc).await.unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Threat: slow-loris (headers trickled forever) and connection floods.
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::init(&dir.path().join("c")).unwrap();
    let mut limits = ServerLimits::default();
    limits.handshake_timeout = Duration::from_millis(500);
    limits.header_timeout = Duration::from_millis(500);
    limits.max_connections = 2;
    let tls = {
        svc.ca_init("CN=T", KeyType::EcP256, None).unwrap();
        tls::from_catalog_ca(&svc, "localhost", "127.0.0.1".parse().unwrap()).unwrap()
    };
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), Some(tls)).limits(limits);
    let server = Server::bind(config, svc).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    // A client that never finishes its TLS handshake is closed after the handshake timeout.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut buf = [0u8; 64];
    let t = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed");
    assert!(t.elapsed() < Duration::from_secs(3));
    // Beyond max_connections, a new connection is closed at once.
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "third connection closed");
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_stores_with_a_separate_key_file_property() {
    let api = start(fast_limits()).await;
    let cert = api.dir.path().join("web.pem");
    let key = api.dir.path().join("web.key");
    let (s, v) = api
        .post(
            "/CertificateStores",
            ADMIN,
            json!({"StorePath": cert, "CertStoreType": 101,
                   "Properties": json!({"SeparatePrivateKeyFilePath": key}).to_string()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let props: Value = serde_json::from_str(v["Properties"].as_str().unwrap()).unwrap();
    assert_eq!(props["SeparatePrivateKeyFilePath"], json!(key));
    let (s, v) = api
        .post(
            "/CertificateStores",
            ADMIN,
            json!({"StorePath": "/x", "CertStoreType": 7}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Threat: a store password reference (`env:`, `file:`) sent by an API caller would read
    // the server's environment or files; the API stores SecretValue as a literal, sealed.
    let (s, v) = api
        .post(
            "/CertificateStores",
            ADMIN,
            json!({"StorePath": api.dir.path().join("r.p12"), "CertStoreType": 102,
                   "Password": {"SecretValue": "env:HOME"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let record = api
        .service()
        .catalog()
        .store(v["Id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert!(matches!(record.password, StorePasswordRecord::Sealed(_)));
    api.stop().await;
}

/// Enrolls `subject` as ADMIN (EC P-256) and returns its id.
async fn enroll(api: &Api, subject: &str) -> i64 {
    let (s, v) = api
        .post("/Enrollment/PFX", ADMIN, json!({"Subject": subject}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["CertificateInformation"]["KeyfactorId"].as_i64().unwrap()
}

async fn job_count(api: &Api) -> usize {
    let (_, h) = api
        .get("/OrchestratorJobs/JobHistory?pq.returnLimit=1000", ADMIN)
        .await;
    let (_, w) = api
        .get("/OrchestratorJobs/ScheduledJobs?pq.returnLimit=1000", ADMIN)
        .await;
    h.as_array().unwrap().len() + w.as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_answer_job_ids_and_leave_nothing_behind_when_refused() {
    let api = start(fast_limits()).await;
    let id = enroll(&api, "CN=addremove").await;
    let store = add_pkcs12_store(&api, "add.p12").await;

    // Threat: a principal without `schedule` on a store writing to it through Keyfactor's
    // other endpoint. Refused before any job exists.
    let add = json!({"CertificateId": id, "Schedule": {"Immediate": true},
        "CertificateStores": [{"CertificateStoreId": store, "Alias": "web", "Overwrite": true}]});
    let (s, v) = api
        .post("/CertificateStores/Certificates/Add", READER, add.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(job_count(&api).await, 0, "a refused Add leaves no job");

    let (s, ids) = api
        .post("/CertificateStores/Certificates/Add", ADMIN, add)
        .await;
    assert_eq!(s, StatusCode::OK, "{ids}");
    let job = ids[0].as_i64().expect("an array of job ids");
    assert_eq!(ids.as_array().unwrap().len(), 1);
    let history = wait_for(&api, "/OrchestratorJobs/JobHistory", |h| {
        h.as_array()
            .unwrap()
            .iter()
            .any(|j| j["JobId"] == job && j["Status"] == 3)
    })
    .await;
    let done = history
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["JobId"] == job)
        .unwrap();
    assert_eq!(done["Result"], 2, "{done}");
    assert_eq!(done["Operation"], "Add");
    // OperationStart / OperationEnd: ISO 8601 UTC, the end not before the start.
    let start = done["OperationStart"].as_str().expect("OperationStart");
    let end = done["OperationEnd"].as_str().expect("OperationEnd");
    assert!(start.ends_with('Z') && end.ends_with('Z'), "{done}");
    assert!(
        pfxkit_catalog::jobs::parse_time(end).unwrap()
            >= pfxkit_catalog::jobs::parse_time(start).unwrap()
    );
    let (_, cert) = api
        .get(&format!("/Certificates/{id}?includeLocations=true"), ADMIN)
        .await;
    assert_eq!(cert["Locations"][0]["Alias"], "web", "{cert}");

    // Remove: refused for the reader, then a job that empties the alias.
    let remove = json!({"CertificateStores": [{"CertificateStoreId": store, "Alias": "web"}]});
    let before = job_count(&api).await;
    let (s, v) = api
        .post(
            "/CertificateStores/Certificates/Remove",
            READER,
            remove.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        job_count(&api).await,
        before,
        "a refused Remove leaves no job"
    );
    let (s, ids) = api
        .post("/CertificateStores/Certificates/Remove", ADMIN, remove)
        .await;
    assert_eq!(s, StatusCode::OK, "{ids}");
    let job = ids[0].as_i64().unwrap();
    wait_for(
        &api,
        &format!("/Certificates/{id}?includeLocations=true"),
        |c| c["Locations"] == json!([]),
    )
    .await;
    let (_, history) = api.get("/OrchestratorJobs/JobHistory", ADMIN).await;
    let removed = history
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["JobId"] == job)
        .unwrap();
    assert_eq!(removed["Operation"], "Remove");
    assert_eq!(removed["Result"], 2, "{removed}");
    let (_, inv) = api
        .get(&format!("/CertificateStores/{store}/Inventory"), ADMIN)
        .await;
    assert_eq!(inv, json!([]), "the entry is gone from the file");

    // An alias the store does not have, and a recurring schedule: 400s that say why.
    let (s, v) = api
        .post(
            "/CertificateStores/Certificates/Remove",
            ADMIN,
            json!({"CertificateStores": [{"CertificateStoreId": store, "Alias": "nope"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["Message"].as_str().unwrap().contains("'nope'"), "{v}");
    let (s, v) = api
        .post(
            "/CertificateStores/Certificates/Add",
            ADMIN,
            json!({"CertificateId": id, "Schedule": {"Daily": {"Time": "2030-01-01T00:00:00Z"}},
                   "CertificateStores": [{"CertificateStoreId": store}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["Message"].as_str().unwrap().contains("Daily"), "{v}");

    // ExactlyOnce in the future: scheduled, not run.
    let (s, ids) = api
        .post(
            "/CertificateStores/Certificates/Add",
            ADMIN,
            json!({"CertificateId": id, "Schedule": {"ExactlyOnce": {"Time": "2099-01-01T00:00:00Z"}},
                   "CertificateStores": [{"CertificateStoreId": store, "Alias": "later"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ids}");
    let (_, scheduled) = api.get("/OrchestratorJobs/ScheduledJobs", ADMIN).await;
    assert_eq!(scheduled[0]["JobId"], ids[0], "{scheduled}");
    assert!(
        scheduled[0].get("OperationStart").is_none(),
        "a date field is absent, never null, before the job starts: {scheduled}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_carry_their_key_type_and_download_as_p7b() {
    let api = start(fast_limits()).await;
    let id = enroll(&api, "CN=p7b.example").await;
    let (s, cert) = api.get(&format!("/Certificates/{id}"), ADMIN).await;
    assert_eq!(s, StatusCode::OK, "{cert}");
    // Keyfactor's v1 KeyType enumeration: 3 is ECC.
    assert_eq!(cert["KeyType"], 3, "{cert}");
    assert_eq!(cert["KeyTypeString"], "ECC");
    assert_eq!(cert["KeySizeInBits"], 256);
    let (_, listed) = api
        .get(
            "/Certificates?pq.queryString=IssuedCN%20-eq%20%22p7b.example%22",
            ADMIN,
        )
        .await;
    assert_eq!(listed[0]["KeyType"], 3, "{listed}");

    let (s, dl) = api
        .post(
            "/Certificates/Download",
            ADMIN,
            json!({"CertID": id, "IncludeChain": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let pem = Base64::decode_vec(dl["Content"].as_str().unwrap()).unwrap();
    assert!(
        String::from_utf8(pem)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        "without x-certificateformat the download is PEM"
    );
    let r = api
        .client
        .post(api.url("/Certificates/Download"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("X-Keyfactor-Requested-With", "APIClient")
        .header("x-certificateformat", "P7B")
        .json(&json!({"CertID": id, "IncludeChain": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let der = Base64::decode_vec(v["Content"].as_str().unwrap()).unwrap();
    // The reference tool reads it: a PKCS#7 holding the certificate and its CA.
    let file = api.dir.path().join("dl.p7b");
    std::fs::write(&file, &der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("CN = p7b.example") || text.contains("CN=p7b.example"),
        "{text}"
    );
    assert!(text.contains("Test CA"), "the chain is included: {text}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_by_store_ids_names_the_entry_by_its_thumbprint() {
    // The v11 client deploys with `storeIds` and no alias; a PKCS#12 entry needs one, and
    // without a default the job failed when it ran.
    let api = start(fast_limits()).await;
    let id = enroll(&api, "CN=storeids").await;
    let store = add_pkcs12_store(&api, "ids.p12").await;
    let (s, out) = api
        .post(
            "/Enrollment/PFX/Deploy",
            ADMIN,
            json!({"certificateId": id, "storeIds": [store], "password": "entry-pw"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let history = wait_for(&api, "/OrchestratorJobs/JobHistory", |h| {
        h.as_array().unwrap().iter().any(|j| j["Status"] == 3)
    })
    .await;
    assert_eq!(history[0]["Result"], 2, "{history}");
    let (_, cert) = api
        .get(&format!("/Certificates/{id}?includeLocations=true"), ADMIN)
        .await;
    assert_eq!(cert["Locations"][0]["Alias"], cert["Thumbprint"], "{cert}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_posted_with_an_agents_client_machine_and_properties_is_that_agents() {
    let api = start(fast_limits()).await;
    api.service().add_agent(None, "web1").unwrap();
    let crt = api.dir.path().join("nginx.crt");
    let key = api.dir.path().join("nginx.key");
    let props = json!({"SeparatePrivateKeyFilePath": key, "PlainKey": true,
                       "InventoryEverySecs": 3600})
    .to_string();
    let (s, v) = api
        .post(
            "/CertificateStores",
            ADMIN,
            json!({"ClientMachine": "web1", "StorePath": crt, "CertStoreType": 101,
                   "Properties": props}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ClientMachine"], "web1");
    let record = api
        .service()
        .catalog()
        .store(v["Id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.machine.as_deref(), Some("web1"));
    assert!(record.plain_key);
    assert_eq!(record.inventory_every_secs, Some(3600));
    // A machine name no agent has keeps the store the server's (Keyfactor clients send one).
    let id = add_pkcs12_store(&api, "server.p12").await;
    let record = api.service().catalog().store(&id).unwrap().unwrap();
    assert_eq!(record.machine, None);
    // A plain key is for PEM stores only.
    let (s, v) = api
        .post(
            "/CertificateStores",
            ADMIN,
            json!({"StorePath": api.dir.path().join("x.p12"), "CertStoreType": 102,
                   "Properties": "{\"PlainKey\": true}", "Password": {"SecretValue": "pw"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("pem stores only"),
        "{v}"
    );
}
