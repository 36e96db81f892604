//! Until `Service::authorize` (branch catalog-sec) lands: the same call shape, deciding with
//! the grants that exist today (global `read`/`schedule`/`modify`). Replaced by the catalog's
//! decision function at merge; the handlers do not change.

use crate::error::ApiError;
use pfxkit_catalog::service::Service;
use pfxkit_catalog::{CertificateId, Permission, StoreRecord};

/// What a principal wants to do.
pub(crate) enum Action<'a> {
    Enroll,
    Admin,
    ReadCertificates,
    ReadStore(&'a StoreRecord),
    #[allow(
        dead_code,
        reason = "read by Service::authorize once catalog-sec lands"
    )]
    UseKey(CertificateId),
}

pub(crate) fn authorize(
    svc: &Service,
    principal: &str,
    action: Action<'_>,
) -> Result<(), ApiError> {
    let global = |needed: Permission| -> Result<bool, ApiError> {
        Ok(svc
            .catalog()
            .grants(principal)?
            .iter()
            .any(|g| g.container_id.is_none() && g.permission >= needed))
    };
    let allowed = match action {
        Action::ReadStore(store) => svc.permitted(Some(principal), store, Permission::Read)?,
        Action::ReadCertificates => global(Permission::Read)?,
        Action::Enroll | Action::UseKey(_) => global(Permission::Schedule)?,
        Action::Admin => global(Permission::Modify)?,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "permission denied: principal '{principal}' may not do this"
        )))
    }
}
