//! `pfxkit agents add|list|revoke` (the catalog side of the fleet) and `pfxkit agent` (the
//! process on each host, in the `pfxkit-agent` crate).

use pfxkit_catalog::{AgentRecord, AgentState};
use serde_json::{Value, json};

use crate::catalog::CatalogArgs;
use crate::manage::PrincipalArgs;
use crate::print_json;

#[derive(Debug, clap::Subcommand)]
pub enum AgentsCommand {
    /// Add an agent (admin): prints its one-time registration token; only the token's hash
    /// is kept, so it is shown this once.
    Add {
        /// Its name: the --machine of its stores and the CN of its certificate.
        name: String,
    },
    /// List the agents: state, last seen, version, jobs done and failed.
    List,
    /// Revoke an agent (admin): its certificate is refused from its next request on.
    Revoke {
        /// Its name.
        name: String,
    },
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| {
        json!(pfxkit_catalog::jobs::format_time(ms))
    })
}

fn agent_json(a: &AgentRecord) -> Value {
    json!({
        "Name": a.name,
        "State": a.state.name(),
        "TokenPending": a.token_pending,
        "CertificateSerial": a.certificate_serial,
        "CertificateThumbprint": a.certificate_thumbprint,
        "LastSeen": time(a.last_seen_ms),
        "Version": a.version,
        "JobsDone": a.jobs_done,
        "JobsFailed": a.jobs_failed,
        "Created": time(Some(a.created_ms)),
    })
}

pub fn agents(
    args: &CatalogArgs,
    principal: &PrincipalArgs,
    command: AgentsCommand,
) -> crate::CliResult {
    let service = args.open()?;
    let who = principal.principal.as_deref();
    match command {
        AgentsCommand::Add { name } => {
            let token = service.add_agent(who, &name)?;
            if args.json {
                print_json(&json!({"Name": name, "Token": token.as_str()}));
            } else {
                outln!(
                    "agent {name} added; its registration token (works once, shown once):\n{}",
                    token.as_str()
                );
            }
        }
        AgentsCommand::List => {
            let all = service.agents(who)?;
            if args.json {
                print_json(&Value::Array(all.iter().map(agent_json).collect()));
            } else {
                for a in &all {
                    let state = match (a.state, a.token_pending) {
                        (AgentState::Revoked, _) => "revoked",
                        (_, true) => "awaiting registration",
                        _ => "registered",
                    };
                    outln!(
                        "{}  {}  last seen {}  version {}  jobs {} done, {} failed",
                        a.name,
                        state,
                        a.last_seen_ms
                            .map_or("never".to_string(), pfxkit_catalog::jobs::format_time),
                        a.version.as_deref().unwrap_or("-"),
                        a.jobs_done,
                        a.jobs_failed
                    );
                }
            }
        }
        AgentsCommand::Revoke { name } => {
            let a = service.revoke_agent(who, &name)?;
            if args.json {
                print_json(&agent_json(&a));
            } else {
                outln!("agent {name} revoked: its certificate is refused from now on");
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The server: https://HOST:PORT (of `pfxkit serve`).
    #[arg(long)]
    server: String,
    /// This agent's name, as `pfxkit agents add` gave it.
    #[arg(long)]
    name: String,
    /// The one-time registration token (env:VAR, file:PATH or pass:TEXT); needed only on the
    /// first start, when the state directory holds no certificate yet.
    #[arg(long, value_parser = crate::password_source)]
    token: Option<pfxkit::PasswordSource>,
    /// PEM file of the CA that issued the server's certificate (`pfxkit ca show --pem`).
    #[arg(long, value_name = "FILE")]
    ca_cert: std::path::PathBuf,
    /// Where the agent keeps its key (0600) and certificate.
    #[arg(long = "state", value_name = "DIR", default_value = "pfxkit-agent")]
    state: std::path::PathBuf,
    /// The longest long-poll, in seconds (1 to 25).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=25))]
    poll_wait: u64,
    /// Touch store files (certificate and key) only inside DIR, after resolving `..` and
    /// symbolic links; repeatable. Each DIR must exist. Without it the agent writes wherever
    /// the server says (and warns so at start).
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<std::path::PathBuf>,
}

/// `pfxkit agent`: runs until SIGTERM or SIGINT, then finishes the job in hand and exits 0.
pub fn agent(args: AgentArgs) -> crate::CliResult {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| pfxkit_catalog::Error::Invalid(format!("cannot handle signals: {e}")))?;
    }
    // Resolved once, now: a missing root is the operator's mistake, not a job's failure.
    let roots = pfxkit_agent::Roots::resolve(&args.roots)
        .map_err(|e| crate::CliError::Usage(e.to_string()))?;
    let mut config = pfxkit_agent::AgentConfig::new(&args.server, &args.name, &args.ca_cert)
        .token(args.token)
        .state_dir(&args.state)
        .roots(roots);
    config.poll_wait_secs = args.poll_wait;
    pfxkit_agent::run(&config, &stop)
        .map_err(|e| crate::CliError::Failed(pfxkit_catalog::Error::Invalid(e.to_string())))
}
