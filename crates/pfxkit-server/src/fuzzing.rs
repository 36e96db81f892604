//! Requests served in memory — no socket, no TLS — for the fuzz target `api_request` (`fuzz/`):
//! the whole path of a request after its connection (routing, the Keyfactor header,
//! authentication, body and query parsing, every handler, the catalog) on a catalog of its own.
//! Built only with the `fuzzing` feature.

use std::sync::Arc;

use base64ct::Encoding;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pfxkit::secret::{Password, PasswordSource};
use pfxkit::store::StoreType;
use pfxkit_catalog::Permission;
use pfxkit_catalog::ca::KeyType;
use pfxkit_catalog::service::{EnrollRequest, Service};

use crate::error::ServerError;
use crate::{ServerLimits, State};

const USER: &str = "fuzz";
const PASSWORD: &str = "fuzz-password";

/// A catalog with a CA, one enrolled certificate (id 1 or near it) deployed to a PKCS#12 store,
/// and the user `fuzz` holding every permission; requests are sent as that user.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    state: Arc<State>,
    authorization: http::HeaderValue,
    store_id: String,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("catalog", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn setup(e: impl std::fmt::Display) -> ServerError {
    ServerError::Io(format!("fuzzing harness: {e}"))
}

impl Harness {
    /// Makes the catalog in a temporary directory.
    ///
    /// # Errors
    /// [`ServerError::Io`] when the catalog, its CA, user or store cannot be made.
    pub fn new() -> Result<Self, ServerError> {
        let dir = tempfile::tempdir().map_err(setup)?;
        let service = Service::init(&dir.path().join("catalog")).map_err(setup)?;
        service
            .ca_init("CN=Fuzz CA", KeyType::EcP256, None)
            .map_err(setup)?;
        service
            .add_user(USER, &Password::new(PASSWORD))
            .map_err(setup)?;
        for permission in [
            Permission::Read,
            Permission::Modify,
            Permission::Enroll,
            Permission::Admin,
            Permission::Recover,
        ] {
            service.grant(None, USER, None, permission).map_err(setup)?;
        }
        let enrolled = service
            .enroll(
                Some(USER),
                &EnrollRequest::new("CN=fuzz.example".to_string()),
                &Password::new("transport"),
            )
            .map_err(setup)?;
        let store = service
            .add_store(
                Some(USER),
                StoreType::Pkcs12,
                &dir.path().join("store.p12"),
                None,
                None,
                Some(&PasswordSource::Literal(Password::new("store-password"))),
            )
            .map_err(setup)?;
        service
            .catalog()
            .set_locations(&store.id, &[("web".into(), enrolled.certificate_id)])
            .map_err(setup)?;
        let limits = ServerLimits::default();
        let state = Arc::new(State {
            service: Arc::new(service),
            auth: crate::auth::Authenticator::new(&limits)?,
            catalog_work: tokio::sync::Semaphore::new(limits.catalog_workers.max(1)),
            limits,
            machine: "fuzz".into(),
            hub: crate::agent::Hub::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(setup)?;
        let credentials = base64ct::Base64::encode_string(format!("{USER}:{PASSWORD}").as_bytes());
        let authorization =
            http::HeaderValue::from_str(&format!("Basic {credentials}")).map_err(setup)?;
        Ok(Harness {
            runtime,
            state,
            authorization,
            store_id: store.id,
            dir,
        })
    }

    /// The id (GUID) of the harness's store, for paths that name a store.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The endpoints the router serves, as (method, path template): a fuzz target picks one
    /// and fills in its `{id}`.
    pub fn endpoints() -> impl Iterator<Item = (&'static str, &'static str)> {
        crate::api::ENDPOINTS.iter().map(|e| (e.method, e.path))
    }

    /// Serves one request as the harness's user (Basic credentials and the Keyfactor header
    /// added, the body declared JSON); its status and body. `None` when `method` or `target`
    /// cannot be an HTTP request line.
    pub fn request(&self, method: &str, target: &str, body: Vec<u8>) -> Option<(u16, Bytes)> {
        let request = http::Request::builder()
            .method(method)
            .uri(target)
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header("X-Keyfactor-Requested-With", "APIClient")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(crate::body::req_body(Full::new(Bytes::from(body))))
            .ok()?;
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        self.runtime.block_on(async {
            let Ok(response) = crate::api::handle(self.state.clone(), request, peer, None).await;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        })
    }
}
