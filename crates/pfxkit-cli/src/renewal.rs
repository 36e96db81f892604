//! Renewal commands: `expiring`, `policy set|list|remove|history`, `renew-due`
//! (`renew --replace` is in `catalog.rs` beside `renew`).

use pfxkit::PasswordSource;
use pfxkit_catalog::jobs::{self, format_time};
use pfxkit_catalog::renewal::{self, ExpiringCertificate};
use pfxkit_catalog::{Error, HistoryRecord, PolicyRecord, RenewalOutcome, StorePasswordRecord};
use serde_json::{Value, json};

use crate::catalog::CatalogArgs;
use crate::manage::PrincipalArgs;
use crate::{password_source, print_json};

#[derive(Debug, clap::Args)]
pub struct ExpiringArgs {
    /// The window: days (30d or 30), hours (12h) or minutes (90m).
    #[arg(long, default_value = "30d")]
    within: String,
    /// Count from this ISO 8601 UTC time instead of now.
    #[arg(long)]
    now: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RenewDueArgs {
    /// Check as of this ISO 8601 UTC time instead of now (renewed certificates then start at
    /// this time).
    #[arg(long)]
    now: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["global", "container"])))]
pub struct ScopeArgs {
    /// The global policy (for certificates located in no container with a policy).
    #[arg(long)]
    global: bool,
    /// The policy of this container's stores.
    #[arg(long)]
    container: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Set the renewal policy of a scope (replacing its previous one); needs global admin.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The principal the renewals and their Replace act as (its enroll and schedule
        /// permissions apply). (This `--principal` names the policy's principal, so the acting
        /// principal of `policy set` is given with `--as` or `PFXKIT_PRINCIPAL`.)
        #[arg(long)]
        principal: String,
        /// The acting principal (needs the global admin permission).
        #[arg(long = "as", env = "PFXKIT_PRINCIPAL", value_name = "PRINCIPAL")]
        actor: Option<String>,
        /// Renew this long before NotAfter: days (30d or 30), hours (12h) or minutes (90m).
        #[arg(long)]
        renew_before: String,
        /// Entry password of the Replace jobs (required by PEM stores): pass:/stdin values
        /// are sealed in the catalog; env:/file: are kept as references.
        #[arg(long, value_parser = password_source)]
        entry_password: Option<PasswordSource>,
    },
    /// List the policies.
    List,
    /// Remove the policy of a scope; needs global admin.
    Remove {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        principal: PrincipalArgs,
    },
    /// Every decision the policy checks made.
    History,
}

fn now_or(now: Option<&str>) -> Result<i64, Error> {
    now.map_or_else(|| Ok(jobs::now_ms()), jobs::parse_time)
}

fn emit(args: &CatalogArgs, value: Value, text: impl FnOnce()) {
    if args.json {
        print_json(&value);
    } else {
        text();
    }
}

fn expiring_json(e: &ExpiringCertificate) -> Value {
    let cert = &e.expiring.record.certificate;
    json!({
        "Id": e.expiring.record.id,
        "Thumbprint": cert.sha1_hex(),
        "IssuedDN": cert.subject(),
        "NotAfter": cert.not_after_rfc3339(),
        "DaysLeft": e.days_left,
        "Locations": e.expiring.locations,
        "RenewedBy": e.expiring.successor,
    })
}

pub fn expiring(args: &CatalogArgs, a: ExpiringArgs) -> Result<(), Error> {
    let within = renewal::parse_window(&a.within)?;
    let now = now_or(a.now.as_deref())?;
    let list = args.open()?.expiring(now, within)?;
    emit(
        args,
        Value::Array(list.iter().map(expiring_json).collect()),
        || {
            if list.is_empty() {
                outln!("no located certificate expires within {}", a.within);
            }
            for e in &list {
                let cert = &e.expiring.record.certificate;
                outln!(
                    "{}  {}  {} days left  {} locations  {}{}",
                    e.expiring.record.id,
                    cert.not_after_rfc3339(),
                    e.days_left,
                    e.expiring.locations,
                    cert.subject(),
                    e.expiring
                        .successor
                        .map(|s| format!("  renewed by {s}"))
                        .unwrap_or_default()
                );
            }
        },
    );
    Ok(())
}

fn policy_json(p: &PolicyRecord) -> Value {
    json!({
        "Id": p.id,
        "ContainerId": p.container_id,
        "Global": p.container_id.is_none(),
        "RenewBeforeSeconds": p.renew_before_secs,
        "RenewBeforeDays": p.renew_before_secs as f64 / 86_400.0,
        "Principal": p.principal,
        "EntryPassword": match &p.entry_password {
            StorePasswordRecord::Sealed(_) => json!("sealed"),
            StorePasswordRecord::Reference(r) => json!(r),
            _ => Value::Null,
        },
    })
}

fn decision_json(h: &HistoryRecord) -> Value {
    let successful: Vec<&str> = h
        .stores
        .iter()
        .filter(|s| s.scheduled)
        .map(|s| s.store_id.as_str())
        .collect();
    let failed: Vec<&str> = h
        .stores
        .iter()
        .filter(|s| !s.scheduled)
        .map(|s| s.store_id.as_str())
        .collect();
    let failures: serde_json::Map<String, Value> = h
        .stores
        .iter()
        .filter(|s| !s.scheduled)
        .map(|s| (s.store_id.clone(), json!(s.reason)))
        .collect();
    let unix = |s: i64| pfxkit::cert::rfc3339(u64::try_from(s).unwrap_or(0));
    json!({
        "Id": h.id,
        "PolicyId": h.policy_id,
        "ContainerId": h.container_id,
        "Principal": h.principal,
        "CertificateId": h.certificate_id,
        "NotAfter": unix(h.not_after),
        "WindowStart": unix(h.window_start),
        "SuccessorId": h.successor_id,
        "Outcome": h.outcome.name(),
        "Message": h.message,
        "SuccessfulStores": successful,
        "FailedStores": failed,
        "Failures": failures,
        "Decided": format_time(h.decided_ms),
    })
}

/// `none`: the line that says there were no decisions.
fn print_decisions(args: &CatalogArgs, list: &[HistoryRecord], none: &str) {
    emit(
        args,
        Value::Array(list.iter().map(decision_json).collect()),
        || {
            if list.is_empty() {
                outln!("{none}");
            }
            for h in list {
                outln!(
                    "{}  certificate {} (window opened {}): {}{}{}",
                    format_time(h.decided_ms),
                    h.certificate_id,
                    pfxkit::cert::rfc3339(u64::try_from(h.window_start).unwrap_or(0)),
                    h.outcome.name(),
                    h.successor_id
                        .map(|s| format!(", successor {s}"))
                        .unwrap_or_default(),
                    h.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
                for s in &h.stores {
                    match &s.reason {
                        None => outln!("  job created for store {}", s.store_id),
                        Some(r) => outln!("  store {} failed: {r}", s.store_id),
                    }
                }
            }
        },
    );
}

pub fn policy(
    args: &CatalogArgs,
    principal: &PrincipalArgs,
    command: PolicyCommand,
) -> Result<(), Error> {
    let service = args.open()?;
    match command {
        PolicyCommand::Set {
            scope,
            principal,
            actor,
            renew_before,
            entry_password,
        } => {
            let policy = service.set_policy(
                actor.as_deref(),
                scope.container.as_deref(),
                renewal::parse_window(&renew_before)?,
                &principal,
                entry_password.as_ref(),
            )?;
            emit(args, policy_json(&policy), || {
                outln!(
                    "policy {} set: renew {} before expiry as {}",
                    policy.id,
                    renew_before,
                    policy.principal
                )
            });
        }
        PolicyCommand::List => {
            let list = service.policies()?;
            emit(
                args,
                Value::Array(list.iter().map(policy_json).collect()),
                || {
                    if list.is_empty() {
                        outln!("no policies");
                    }
                    for p in &list {
                        outln!(
                            "policy {}  {}  renew {}s before expiry as {}",
                            p.id,
                            p.container_id
                                .map_or_else(|| "global".to_string(), |c| format!("container {c}")),
                            p.renew_before_secs,
                            p.principal
                        );
                    }
                },
            );
        }
        PolicyCommand::Remove {
            scope,
            principal: acting,
        } => {
            // This command's --principal, else the one the caller resolved (given before the
            // command, or PFXKIT_PRINCIPAL).
            let acting = acting.resolved(principal.principal.as_deref());
            service.remove_policy(acting.principal.as_deref(), scope.container.as_deref())?;
            emit(args, json!({}), || outln!("policy removed"));
        }
        PolicyCommand::History => {
            print_decisions(args, &service.policy_history()?, "no renewal decisions yet")
        }
    }
    Ok(())
}

pub fn renew_due(args: &CatalogArgs, a: RenewDueArgs) -> Result<(), Error> {
    let now = now_or(a.now.as_deref())?;
    let decisions = args.open()?.renew_due(now)?;
    print_decisions(args, &decisions, "no certificate is due for renewal");
    // Like `jobs run`: a certificate that could not be renewed must not read as success.
    let failed = decisions
        .iter()
        .filter(|d| d.outcome == RenewalOutcome::Failed)
        .count();
    if failed > 0 {
        return Err(Error::Invalid(format!(
            "{failed} of {} renewals failed (see their messages)",
            decisions.len()
        )));
    }
    Ok(())
}
