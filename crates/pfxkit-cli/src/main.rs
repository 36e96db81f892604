//! The `pfxkit` command line: argument parsing and printing only; every decision is the
//! library's. The contract (names, JSON fields, exit codes) is `docs/cli.md`.

/// `println!` that ignores a closed stdout (`pfxkit inspect … | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod agents;
mod build;
mod catalog;
mod inspect;
mod manage;
mod renewal;
mod serve;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pfxkit::{Password, PasswordSource};
use pfxkit_catalog::Error;

/// PKCS#12/PFX and Java keystore tool: what `openssl pkcs12` and `keytool` do, plus certificate
/// stores and a catalog with an embedded CA that deploys and replaces certificates.
///
/// Everyday tasks:
///   look inside a file          pfxkit inspect web.p12 --password env:PFX_PASS
///   PFX from key + cert + chain pfxkit build --key k.pem --cert c.pem --chain ca.pem --out web.p12 --password file:pw.txt
///   PFX to PEM files for nginx  pfxkit convert web.p12 --password env:P --to pem --split /etc/nginx/tls --plain-key
///   PFX to JKS                  pfxkit convert web.p12 --password env:P --to jks --out web.jks --out-password env:S
///   list a keystore             pfxkit store inventory --type jks --path web.jks --store-password env:S
///   import a key entry          pfxkit store add --type jks --path web.jks --store-password env:S --alias web --pfx new.p12 --pfx-password env:P
///   import a trusted CA         pfxkit store add --type jks --path trust.jks --store-password env:S --alias root --cert root.pem
///   rename an entry             pfxkit store rename --type jks --path web.jks --store-password env:S --alias web --to tomcat
///   change a store password     pfxkit store passwd --type jks --path web.jks --store-password env:S --new-password env:S2
///   change a key password       pfxkit store passwd --type jks --path web.jks --store-password env:S --alias web --key-password env:K --new-key-password env:K2
///   only the leaf / the CAs     pfxkit inspect web.p12 --password env:P --leaf-only   (or --ca-only, --no-keys)
///
/// Passwords are sources: pass:TEXT, env:VAR, file:PATH or stdin. Exit codes: 0 success,
/// 1 failure, 2 usage, 3 wrong password, 4 malformed input, 5 limit exceeded, 6 unsupported.
#[derive(Debug, Parser)]
#[command(name = "pfxkit", version, about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON document on stdout (and errors as one JSON object on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// `--catalog` before the command, as earlier versions took it (shown on the commands
    /// that use a catalog).
    #[arg(long = "catalog", hide = true)]
    catalog: Option<String>,
    /// `--principal` before the command, as earlier versions took it (shown on the commands
    /// that act as a principal).
    #[arg(long = "principal", hide = true)]
    principal: Option<String>,
}

/// A command that works on a catalog.
#[derive(Debug, clap::Args)]
struct OnCatalog<T: clap::Args> {
    #[command(flatten)]
    catalog: catalog::CatalogArgs,
    #[command(flatten)]
    args: T,
}

/// A group of subcommands that work on a catalog.
#[derive(Debug, clap::Args)]
struct CatalogGroup<S: clap::Subcommand> {
    #[command(flatten)]
    catalog: catalog::CatalogArgs,
    #[command(subcommand)]
    command: S,
}

/// A command that works on a catalog as a principal.
#[derive(Debug, clap::Args)]
struct AsPrincipal<T: clap::Args> {
    #[command(flatten)]
    catalog: catalog::CatalogArgs,
    #[command(flatten)]
    principal: manage::PrincipalArgs,
    #[command(flatten)]
    args: T,
}

/// A group of subcommands that work on a catalog as a principal.
#[derive(Debug, clap::Args)]
struct PrincipalGroup<S: clap::Subcommand> {
    #[command(flatten)]
    catalog: catalog::CatalogArgs,
    #[command(flatten)]
    principal: manage::PrincipalArgs,
    #[command(subcommand)]
    command: S,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Detect a file's format by content and list what it holds (openssl pkcs12 -info, keytool -list -v).
    Inspect(inspect::Args),
    /// Write a PKCS#12 archive from a key, its certificate and chain (openssl pkcs12 -export).
    Build(build::BuildArgs),
    /// Re-encode every key entry and certificate of a file in another format (keytool -importkeystore, openssl pkcs12 -nodes).
    Convert(build::ConvertArgs),
    /// Inventory, add to, rename in, re-password and remove from certificate stores (keytool -list/-importcert/-changealias/-storepasswd/-keypasswd/-delete).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Create a catalog.
    Catalog(CatalogGroup<catalog::CatalogCommand>),
    /// The embedded certificate authority.
    Ca(CatalogGroup<catalog::CaCommand>),
    /// Generate a key and issue a certificate from the embedded CA.
    Enroll(AsPrincipal<catalog::EnrollArgs>),
    /// Register a PFX made elsewhere (key and chain).
    Import(AsPrincipal<catalog::ImportArgs>),
    /// Issue a new certificate like an existing one (deploys only with --replace).
    Renew(AsPrincipal<catalog::RenewArgs>),
    /// Located certificates that expire within a window.
    Expiring(OnCatalog<renewal::ExpiringArgs>),
    /// Renewal policies: renew and replace certificates before they expire.
    Policy(CatalogGroup<renewal::PolicyCommand>),
    /// Run the renewal policies' check once.
    RenewDue(OnCatalog<renewal::RenewDueArgs>),
    /// Certificates in the catalog.
    Certificates(CatalogGroup<catalog::CertificatesCommand>),
    /// Store containers.
    Containers(PrincipalGroup<manage::ContainersCommand>),
    /// Stores known to the catalog.
    Stores(PrincipalGroup<manage::StoresCommand>),
    /// Grant a permission to a principal.
    Grant(OnCatalog<manage::GrantArgs>),
    /// Schedule jobs that put a certificate into stores.
    Deploy(OnCatalog<manage::DeployArgs>),
    /// Inventory stores and record where each certificate is.
    Inventory(OnCatalog<manage::InventoryArgs>),
    /// Replace a certificate in every store where inventory found it.
    Replace(OnCatalog<manage::ReplaceArgs>),
    /// Management jobs.
    Jobs(PrincipalGroup<manage::JobsCommand>),
    /// Serve the Keyfactor-compatible HTTP API.
    Serve(OnCatalog<serve::ServeArgs>),
    /// Users of the HTTP API.
    Users(CatalogGroup<serve::UsersCommand>),
    /// API tokens of the HTTP API.
    Tokens(CatalogGroup<serve::TokensCommand>),
    /// Manage the agents that run the jobs of other hosts' stores (add prints a one-time
    /// registration token; list; revoke).
    Agents(PrincipalGroup<agents::AgentsCommand>),
    /// Run an agent on this host: register once, then run this host's store jobs for
    /// `pfxkit serve` over mutual TLS until SIGTERM.
    Agent(agents::AgentArgs),
    /// Run the whole flow end to end; exits 0 only if every check held.
    Demo {
        /// Work in this directory (kept) instead of a temporary one (removed).
        #[arg(long = "dir", id = "demo_dir")]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_failure(&e),
    };
    let json = cli.json;
    if let Err(e) = check_stdin_passwords() {
        let e = CliError::Failed(e);
        report_error(&e, json);
        return ExitCode::from(e.exit_code());
    }
    // The catalog commands print through their CatalogArgs, which carry the global --json.
    let before = cli.catalog.clone();
    let on = |c: catalog::CatalogArgs| c.resolved(before.as_deref(), json);
    let principal = cli.principal.as_deref();
    let who = |p: manage::PrincipalArgs| p.resolved(principal);
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args, json),
        Command::Build(args) => build::build(args, json),
        Command::Convert(args) => build::convert(args, json),
        Command::Store(command) => store::run(command, json),
        Command::Catalog(g) => catalog::catalog(&on(g.catalog), g.command),
        Command::Ca(g) => catalog::ca(&on(g.catalog), g.command),
        Command::Enroll(a) => catalog::enroll(&on(a.catalog), &who(a.principal), a.args),
        Command::Import(a) => catalog::import(&on(a.catalog), &who(a.principal), a.args),
        Command::Renew(a) => catalog::renew(&on(a.catalog), &who(a.principal), a.args),
        Command::Expiring(a) => renewal::expiring(&on(a.catalog), a.args).map_err(CliError::from),
        Command::Policy(g) => renewal::policy(
            &on(g.catalog),
            // `policy set` names the policy's principal with --principal (its actor is --as);
            // `policy remove` takes its own --principal.
            &who(manage::PrincipalArgs { principal: None }),
            g.command,
        )
        .map_err(CliError::from),
        Command::RenewDue(a) => renewal::renew_due(&on(a.catalog), a.args).map_err(CliError::from),
        Command::Certificates(g) => catalog::certificates(&on(g.catalog), g.command),
        Command::Containers(g) => manage::containers(&on(g.catalog), &who(g.principal), g.command),
        Command::Stores(g) => manage::stores(&on(g.catalog), &who(g.principal), g.command),
        Command::Grant(a) => manage::grant(&on(a.catalog), a.args),
        Command::Deploy(a) => manage::deploy(&on(a.catalog), a.args, principal),
        Command::Inventory(a) => manage::inventory(&on(a.catalog), a.args),
        Command::Replace(a) => manage::replace(&on(a.catalog), a.args, principal),
        Command::Jobs(g) => match manage::jobs(&on(g.catalog), &who(g.principal), g.command) {
            Ok(Some(code)) => return ExitCode::from(code),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Serve(a) => serve::serve(&on(a.catalog), a.args).map_err(CliError::from),
        Command::Users(g) => serve::users(&on(g.catalog), g.command).map_err(CliError::from),
        Command::Tokens(g) => serve::tokens(&on(g.catalog), g.command).map_err(CliError::from),
        Command::Agents(g) => agents::agents(&on(g.catalog), &who(g.principal), g.command),
        Command::Agent(args) => agents::agent(args),
        Command::Demo { dir } => manage::demo(json, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

/// A clap error: help and version go to stdout as clap prints them; a usage error is exit 2,
/// as one JSON object on stderr when `--json` was among the arguments.
fn usage_failure(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) || !std::env::args().any(|a| a == "--json")
    {
        e.exit();
    }
    // clap's rendering carries usage and tips after a blank line; the first paragraph is the
    // error itself (with the missing arguments indented under it).
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string();
    report_error(&CliError::Usage(message), true);
    ExitCode::from(2)
}

/// Prints an error on stderr: `pfxkit: MESSAGE`, or with `--json` one object
/// `{"Error": {"Code": N, "Kind": "…", "Message": "…"}}`.
fn report_error(e: &CliError, json: bool) {
    if json {
        let value = serde_json::json!({ "Error": {
            "Code": e.exit_code(),
            "Kind": e.kind(),
            "Message": e.to_string(),
        }});
        eprintln!("{}", serde_json::to_string(&value).unwrap_or_default());
    } else {
        eprintln!("pfxkit: {e}");
    }
}

/// Why a command failed: a usage error (exit 2) or a failure of the layers below.
#[derive(Debug)]
pub enum CliError {
    /// Bad, missing or conflicting options: exit 2.
    Usage(String),
    /// Everything the catalog, the stores and the codecs report.
    Failed(Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Failed(e)
    }
}

impl From<pfxkit::Error> for CliError {
    fn from(e: pfxkit::Error) -> Self {
        CliError::Failed(Error::Codec(e))
    }
}

impl CliError {
    /// Exit codes of the contract: 2 usage, 3 wrong password/integrity, 4 malformed, 5 limit,
    /// 6 unsupported, 1 anything else.
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(Error::Codec(pfxkit::Error::WrongPassword { .. })) => 3,
            CliError::Failed(Error::Codec(pfxkit::Error::Malformed { .. })) => 4,
            CliError::Failed(Error::Codec(pfxkit::Error::LimitExceeded { .. })) => 5,
            CliError::Failed(Error::Codec(pfxkit::Error::Unsupported { .. })) => 6,
            CliError::Failed(_) => 1,
        }
    }

    /// The `Kind` of the JSON error object: the error's variant name.
    fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "Usage",
            CliError::Failed(Error::Codec(e)) => match e {
                pfxkit::Error::WrongPassword { .. } => "WrongPassword",
                pfxkit::Error::Malformed { .. } => "Malformed",
                pfxkit::Error::LimitExceeded { .. } => "LimitExceeded",
                pfxkit::Error::Unsupported { .. } => "Unsupported",
                pfxkit::Error::KeyMismatch { .. } => "KeyMismatch",
                pfxkit::Error::AliasExists { .. } => "AliasExists",
                pfxkit::Error::AliasNotFound { .. } => "AliasNotFound",
                pfxkit::Error::StoreNotFound { .. } => "StoreNotFound",
                pfxkit::Error::Io { .. } => "Io",
                _ => "Invalid",
            },
            CliError::Failed(Error::Database(_)) => "Database",
            CliError::Failed(Error::NotFound(_)) => "NotFound",
            CliError::Failed(Error::Forbidden(_)) => "Forbidden",
            CliError::Failed(_) => "Invalid",
        }
    }
}

/// Result of a command.
pub type CliResult = Result<(), CliError>;

/// Names the password that failed in a wrong-password error ("the store password of web.p12")
/// and leaves every other error as it is.
pub fn naming_password(which: String) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        Error::Codec(pfxkit::Error::WrongPassword { context }) => {
            Error::Codec(pfxkit::Error::WrongPassword {
                context: format!("{which} ({context})"),
            })
        }
        other => other,
    }
}

/// Names the password of a file read with `--password` and perhaps `--key-password`: a JKS or
/// JCEKS key entry that does not decrypt failed on the key password ("the key password of
/// web.jks"), anything else on the file's password.
pub fn naming_file_password(
    path: &std::path::Path,
    key_password_given: bool,
) -> impl FnOnce(Error) -> Error {
    let file = path.display().to_string();
    move |e| match e {
        Error::Codec(pfxkit::Error::WrongPassword { context })
            if context.starts_with("key entry ") =>
        {
            let which = if key_password_given {
                format!("the key password of {file}")
            } else {
                format!(
                    "the key password of {file} (none given, so the store password was tried: \
                     give --key-password)"
                )
            };
            naming_password(which)(Error::Codec(pfxkit::Error::WrongPassword { context }))
        }
        other => naming_password(format!("the password of {file}"))(other),
    }
}

/// How many password options of this command line read `stdin`.
static STDIN_PASSWORDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Parses a `--password` style option into a source (clap value parser).
fn password_source(s: &str) -> Result<PasswordSource, String> {
    let source: PasswordSource = s.parse().map_err(|e: pfxkit::Error| e.to_string())?;
    if matches!(source, PasswordSource::Stdin) {
        STDIN_PASSWORDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(source)
}

/// Standard input holds one password: a second option reading it would silently get an empty
/// one.
fn check_stdin_passwords() -> Result<(), Error> {
    let n = STDIN_PASSWORDS.load(std::sync::atomic::Ordering::SeqCst);
    if n > 1 {
        return Err(Error::Invalid(format!(
            "{n} password options read stdin; standard input holds one password: use env: or file: for the others"
        )));
    }
    Ok(())
}

/// Resolves an optional password source.
fn resolve(src: Option<&PasswordSource>) -> Result<Option<Password>, Error> {
    Ok(src.map(PasswordSource::resolve).transpose()?)
}

/// Reads a whole input file, naming it in errors, never past the input size limit.
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    Ok(pfxkit::Limits::default().read_file(path)?)
}

/// Text from a file or a caller (an alias, a subject, a job's message) made safe for a terminal:
/// control characters are written as escapes (`\u{1b}`, `\n`), so a hostile alias can neither
/// forge lines of output nor send terminal escape sequences. JSON output escapes by itself.
fn escape_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints one JSON document on stdout.
fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
