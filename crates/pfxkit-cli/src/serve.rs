//! `pfxkit serve`, `pfxkit users`, `pfxkit tokens`: the HTTP API and who may call it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::json;

use crate::catalog::CatalogArgs;
use crate::{password_source, print_json};
use pfxkit::PasswordSource;
use pfxkit_catalog::Error;
use pfxkit_server::{Server, ServerConfig, host_name, tls};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The server's certificate chain (PEM, leaf first).
    #[arg(long, requires = "tls_key", conflicts_with_all = ["tls_from_ca", "insecure_http"])]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Issue the server's certificate from the catalog's CA (clients trust `ca export`).
    #[arg(long, conflicts_with = "insecure_http")]
    tls_from_ca: bool,
    /// Serve plain HTTP (only on a loopback address).
    #[arg(long)]
    insecure_http: bool,
    /// Do not run due jobs in the server (nor the renewal policy check).
    #[arg(long)]
    no_runner: bool,
    /// How often the runner checks the renewal policies (once at start, then every PERIOD):
    /// 1h, 30m, 1d or seconds.
    #[arg(long, default_value = "1h", value_parser = crate::catalog::duration_secs, value_name = "PERIOD")]
    renewal_every: u64,
    /// Log format: `text` or `json` (one line per request, on stderr).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user of the HTTP API (its password is stored as an Argon2id hash).
    Add {
        /// The user name (what Basic authentication sends; the principal).
        name: String,
        /// The password: pass:TEXT, env:VAR, file:PATH or stdin.
        #[arg(long, value_parser = password_source)]
        password: PasswordSource,
    },
    /// Remove a user and its tokens.
    Remove {
        /// The user name.
        name: String,
    },
    /// List the users.
    List,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Issue an API token for a user; it is printed once and only its hash is stored.
    Add {
        /// The user it authenticates as.
        name: String,
        /// When it expires (ISO 8601 UTC); never by default.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id, as `tokens add` printed it.
        id: i64,
    },
}

pub fn users(args: &CatalogArgs, command: UsersCommand) -> Result<(), Error> {
    let service = args.open()?;
    match command {
        UsersCommand::Add { name, password } => {
            service.add_user(&name, &password.resolve()?)?;
            if args.json {
                print_json(&json!({"User": name}));
            } else {
                outln!("user {name} added");
            }
        }
        UsersCommand::Remove { name } => {
            service.remove_user(&name)?;
            if args.json {
                print_json(&json!({"Removed": name}));
            } else {
                outln!("user {name} removed");
            }
        }
        UsersCommand::List => {
            let users = service.catalog().users()?;
            if args.json {
                print_json(&json!(users));
            } else {
                if users.is_empty() {
                    outln!("no users");
                }
                for u in users {
                    outln!("{u}");
                }
            }
        }
    }
    Ok(())
}

pub fn tokens(args: &CatalogArgs, command: TokensCommand) -> Result<(), Error> {
    let service = args.open()?;
    match command {
        TokensCommand::Add { name, expires } => {
            let expires_ms = expires
                .as_deref()
                .map(pfxkit_catalog::jobs::parse_time)
                .transpose()?;
            let (id, token) = service.add_token(&name, expires_ms)?;
            if args.json {
                print_json(&json!({"Id": id, "User": name, "Token": token.as_str()}));
            } else {
                outln!("token {id} for {name} (shown once):\n{}", token.as_str());
            }
        }
        TokensCommand::Revoke { id } => {
            service.revoke_token(id)?;
            if args.json {
                print_json(&json!({"Revoked": id}));
            } else {
                outln!("token {id} revoked");
            }
        }
    }
    Ok(())
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PFXKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

pub fn serve(args: &CatalogArgs, serve: ServeArgs) -> Result<(), Error> {
    init_logging(&serve.log_format);
    let service = args.open()?;
    let host = host_name();
    let tls_config = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tls::from_pem_files_with_agents(cert, key, &service).map_err(invalid)?)
        }
        _ if serve.tls_from_ca => {
            Some(tls::from_catalog_ca(&service, &host, serve.listen.ip()).map_err(invalid)?)
        }
        _ if serve.insecure_http => None,
        _ => {
            return Err(Error::Invalid(
                "TLS is required: --tls-cert/--tls-key or --tls-from-ca (plain HTTP: --insecure-http, loopback only)".into(),
            ));
        }
    };
    if serve.renewal_every == 0 {
        return Err(Error::Invalid(
            "--renewal-every must be longer than zero".into(),
        ));
    }
    let mut limits = pfxkit_server::ServerLimits::default();
    limits.renewal_interval = std::time::Duration::from_secs(serve.renewal_every);
    let config = ServerConfig::new(serve.listen, tls_config)
        .runner(!serve.no_runner)
        .limits(limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let server = Server::bind(config, service).await.map_err(invalid)?;
        let url = server.base_url().map_err(invalid)?;
        {
            let mut out = std::io::stdout().lock();
            let line = if args.json {
                json!({"Listening": url}).to_string()
            } else {
                format!("listening on {url}")
            };
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        server.run(shutdown_signal()).await.map_err(invalid)
    })?;
    // Blocking work still running past the drain time is abandoned, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

fn invalid(e: pfxkit_server::ServerError) -> Error {
    match e {
        pfxkit_server::ServerError::Catalog(e) => e,
        other => Error::Invalid(other.to_string()),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
