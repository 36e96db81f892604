//! The `pfxkit` command line: argument parsing and printing only; every decision is the
//! library's. The contract (names, JSON fields, exit codes) is `shared/specs/cli.md`.

/// `println!` that ignores a closed stdout (`pfxkit inspect … | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

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

/// PKCS#12/PFX and Java keystore tool.
#[derive(Debug, Parser)]
#[command(name = "pfxkit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    catalog: catalog::CatalogArgs,
    #[command(flatten)]
    principal: manage::PrincipalArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Detect a file's format by content and list what it holds.
    Inspect(inspect::Args),
    /// Write a PKCS#12 archive from a key, its certificate and chain.
    Build(build::BuildArgs),
    /// Re-encode every key entry and certificate of a file in another format.
    Convert(build::ConvertArgs),
    /// Inventory, add to and remove from certificate stores.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Create a catalog.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// The embedded certificate authority.
    #[command(subcommand)]
    Ca(catalog::CaCommand),
    /// Generate a key and issue a certificate from the embedded CA.
    Enroll(catalog::EnrollArgs),
    /// Register a PFX made elsewhere (key and chain).
    Import(catalog::ImportArgs),
    /// Issue a new certificate like an existing one (deploys only with --replace).
    Renew(catalog::RenewArgs),
    /// Located certificates that expire within a window.
    Expiring(renewal::ExpiringArgs),
    /// Renewal policies: renew and replace certificates before they expire.
    #[command(subcommand)]
    Policy(renewal::PolicyCommand),
    /// Run the renewal policies' check once.
    RenewDue(renewal::RenewDueArgs),
    /// Certificates in the catalog.
    #[command(subcommand)]
    Certificates(catalog::CertificatesCommand),
    /// Store containers.
    #[command(subcommand)]
    Containers(manage::ContainersCommand),
    /// Stores known to the catalog.
    #[command(subcommand)]
    Stores(manage::StoresCommand),
    /// Grant a permission to a principal.
    Grant(manage::GrantArgs),
    /// Schedule jobs that put a certificate into stores.
    Deploy(manage::DeployArgs),
    /// Inventory stores and record where each certificate is.
    Inventory(manage::InventoryArgs),
    /// Replace a certificate in every store where inventory found it.
    Replace(manage::ReplaceArgs),
    /// Management jobs.
    #[command(subcommand)]
    Jobs(manage::JobsCommand),
    /// Serve the Keyfactor-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Users of the HTTP API.
    #[command(subcommand)]
    Users(serve::UsersCommand),
    /// API tokens of the HTTP API.
    #[command(subcommand)]
    Tokens(serve::TokensCommand),
    /// Run the whole flow end to end; exits 0 only if every check held.
    Demo {
        /// Work in this directory (kept) instead of a temporary one (removed).
        #[arg(long = "dir", id = "demo_dir")]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = check_stdin_passwords() {
        eprintln!("pfxkit: {e}");
        return ExitCode::from(exit_code(&e));
    }
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Build(args) => build::build(args),
        Command::Convert(args) => build::convert(args),
        Command::Store(command) => store::run(command),
        Command::Catalog(c) => catalog::catalog(&cli.catalog, c),
        Command::Ca(c) => catalog::ca(&cli.catalog, c),
        Command::Enroll(a) => catalog::enroll(&cli.catalog, &cli.principal, a),
        Command::Import(a) => catalog::import(&cli.catalog, &cli.principal, a),
        Command::Renew(a) => catalog::renew(&cli.catalog, &cli.principal, a),
        Command::Expiring(a) => renewal::expiring(&cli.catalog, a),
        Command::Policy(p) => renewal::policy(&cli.catalog, &cli.principal, p),
        Command::RenewDue(a) => renewal::renew_due(&cli.catalog, a),
        Command::Certificates(c) => catalog::certificates(&cli.catalog, c),
        Command::Containers(c) => manage::containers(&cli.catalog, &cli.principal, c),
        Command::Stores(c) => manage::stores(&cli.catalog, &cli.principal, c),
        Command::Grant(g) => manage::grant(&cli.catalog, g),
        Command::Deploy(d) => manage::deploy(&cli.catalog, &cli.principal, d),
        Command::Inventory(i) => manage::inventory(&cli.catalog, i),
        Command::Replace(r) => manage::replace(&cli.catalog, &cli.principal, r),
        Command::Jobs(j) => match manage::jobs(&cli.catalog, &cli.principal, j) {
            Ok(Some(code)) => return ExitCode::from(code),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Serve(s) => serve::serve(&cli.catalog, s),
        Command::Users(u) => serve::users(&cli.catalog, u),
        Command::Tokens(t) => serve::tokens(&cli.catalog, t),
        Command::Demo { dir } => manage::demo(&cli.catalog, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pfxkit: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Exit codes of the contract: 3 wrong password/integrity, 4 malformed, 5 limit, 6 unsupported,
/// 1 anything else.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Codec(pfxkit::Error::WrongPassword { .. }) => 3,
        Error::Codec(pfxkit::Error::Malformed { .. }) => 4,
        Error::Codec(pfxkit::Error::LimitExceeded { .. }) => 5,
        Error::Codec(pfxkit::Error::Unsupported { .. }) => 6,
        _ => 1,
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
