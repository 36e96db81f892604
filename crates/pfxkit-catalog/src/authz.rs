//! Authorization: the one place that decides whether a principal may do something. The CLI, the
//! HTTP API and the service's own operations all ask [`Service::authorize`].
//!
//! A *principal* is a name the caller authenticated (an HTTP user or token, the CLI's
//! `--principal`). With no principal the catalog's owner acts — whoever can read the catalog key
//! can do everything anyway — and every action is allowed.
//!
//! | action | needs |
//! |---|---|
//! | [`Action::Enroll`] (enroll, renew, import) | global `enroll` |
//! | [`Action::Admin`] (users, tokens, grants, containers, stores, agents) | global `admin` |
//! | [`Action::ReadCertificates`] | global `read` (or `schedule`/`modify`) |
//! | [`Action::ReadStore`] | `read` on the store |
//! | [`Action::Schedule`] | `schedule` on the store |
//! | [`Action::UseKey`] | the principal enrolled, renewed or imported the certificate, or global `recover` |
//!
//! "On the store" means: the principal's grants on the store's container when it holds any
//! there, otherwise its global grants. Another principal's grants never change the answer.

use crate::error::{Error, Result};
use crate::service::Service;
use crate::{CertificateId, Grant, Permission, StoreRecord};

/// What a principal wants to do.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Action<'a> {
    /// Enroll, renew or import a certificate (global `enroll`).
    Enroll,
    /// Manage users, tokens, grants, containers, stores and agents (global `admin`).
    Admin,
    /// List and show the catalog's certificates (global `read`).
    ReadCertificates,
    /// See a store and its contents (`read` on the store).
    ReadStore(&'a StoreRecord),
    /// Schedule management jobs on a store (`schedule` on the store).
    Schedule(&'a StoreRecord),
    /// Use a certificate's private key: Deploy it, make it the new certificate of a Replace,
    /// download it with its key (ownership of the certificate, or global `recover`).
    UseKey(CertificateId),
}

/// The grants of one principal, with the store-permission rule applied.
fn store_permission_held(grants: &[Grant], store: &StoreRecord, needed: Permission) -> bool {
    let on_container: Vec<&Grant> = match store.container_id {
        Some(c) => grants
            .iter()
            .filter(|g| g.container_id == Some(c))
            .collect(),
        None => Vec::new(),
    };
    // The principal's grants on the container decide when it holds any there; otherwise its
    // global grants. Never anyone else's.
    let scope: Vec<&Grant> = if on_container.is_empty() {
        grants.iter().filter(|g| g.container_id.is_none()).collect()
    } else {
        on_container
    };
    scope.iter().any(|g| g.permission.includes(needed))
}

fn global_held(grants: &[Grant], needed: Permission) -> bool {
    grants
        .iter()
        .any(|g| g.container_id.is_none() && g.permission.includes(needed))
}

impl Service {
    /// Whether `principal` may do `action`: `Ok(())`, or [`Error::Forbidden`] naming the
    /// permission that is missing. With no principal the catalog's owner acts and may do
    /// anything.
    ///
    /// # Errors
    /// [`Error::Forbidden`] when the permission is missing; [`Error::NotFound`] for
    /// [`Action::UseKey`] on an unknown certificate; database errors.
    pub fn authorize(&self, principal: Option<&str>, action: Action<'_>) -> Result<()> {
        let Some(principal) = principal else {
            return Ok(());
        };
        let grants = self.catalog().grants(principal)?;
        let denied =
            |what: String| Err(Error::Forbidden(format!("principal '{principal}' {what}")));
        match action {
            Action::Enroll if !global_held(&grants, Permission::Enroll) => {
                denied("lacks the global enroll permission".into())
            }
            Action::Admin if !global_held(&grants, Permission::Admin) => {
                denied("lacks the global admin permission".into())
            }
            Action::ReadCertificates if !global_held(&grants, Permission::Read) => {
                denied("lacks the global read permission".into())
            }
            Action::ReadStore(store)
                if !store_permission_held(&grants, store, Permission::Read) =>
            {
                denied(format!("lacks the read permission on store {}", store.id))
            }
            Action::Schedule(store)
                if !store_permission_held(&grants, store, Permission::Schedule) =>
            {
                denied(format!(
                    "lacks the Schedule permission on store {}",
                    store.id
                ))
            }
            Action::UseKey(id) => {
                let record = self
                    .catalog()
                    .certificate(id)?
                    .ok_or_else(|| Error::NotFound(format!("unknown certificate id {id}")))?;
                if record.owner.as_deref() == Some(principal)
                    || global_held(&grants, Permission::Recover)
                {
                    Ok(())
                } else {
                    denied(format!(
                        "neither enrolled nor imported certificate {id} and lacks the global recover permission"
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorePasswordRecord;
    use pfxkit::store::StoreType;

    fn grant(container_id: Option<i64>, permission: Permission) -> Grant {
        Grant {
            principal: "p".into(),
            container_id,
            permission,
        }
    }

    fn store(container_id: Option<i64>) -> StoreRecord {
        StoreRecord {
            id: "s".into(),
            store_type: StoreType::Pem,
            path: "/x".into(),
            key_path: None,
            container_id,
            password: StorePasswordRecord::None,
            machine: None,
            plain_key: false,
            inventory_every_secs: None,
        }
    }

    #[test]
    fn container_grants_decide_for_their_principal_else_its_global_grants() {
        let global = [grant(None, Permission::Schedule)];
        assert!(store_permission_held(
            &global,
            &store(Some(1)),
            Permission::Schedule
        ));
        let narrowed = [
            grant(None, Permission::Schedule),
            grant(Some(1), Permission::Read),
        ];
        assert!(!store_permission_held(
            &narrowed,
            &store(Some(1)),
            Permission::Schedule
        ));
        assert!(store_permission_held(
            &narrowed,
            &store(Some(2)),
            Permission::Schedule
        ));
        assert!(store_permission_held(
            &narrowed,
            &store(None),
            Permission::Schedule
        ));
    }

    #[test]
    fn global_only_permissions_include_no_store_permission() {
        for p in [Permission::Enroll, Permission::Recover, Permission::Admin] {
            assert!(!p.includes(Permission::Read), "{p:?}");
            assert!(!Permission::Modify.includes(p), "{p:?}");
            assert!(p.is_global_only());
        }
        assert!(Permission::Modify.includes(Permission::Read));
        assert!(!Permission::Read.includes(Permission::Schedule));
    }
}
