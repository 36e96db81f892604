//! A throwaway PostgreSQL for tests and benches: `initdb` into a fresh temporary directory,
//! `pg_ctl start` listening only on a Unix socket in that directory (no TCP port, socket 0700),
//! stopped and removed on drop. PostgreSQL refuses to run as root, so as root the server runs as
//! the `postgres` system user (`runuser`), which owns the directory.
//!
//! In CI (`CI=true`) a server that cannot start fails the test; elsewhere [`TestPostgres::start`]
//! returns `None` after saying why, and the test returns early.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The socket "port": only names the socket file inside the private directory.
const PORT: u16 = 5432;

pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("pg_ctl"))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        let real = std::fs::canonicalize(&p).unwrap_or(p);
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn unavailable(why: &str) -> Option<TestPostgres> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("PostgreSQL test server could not start in CI: {why}");
    }
    eprintln!("skipping: no PostgreSQL test server ({why}); CI=true makes this a failure");
    None
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl TestPostgres {
    /// Starts a server, or says why it cannot (see the module docs).
    pub fn start() -> Option<TestPostgres> {
        let Some(bin) = find_bin() else {
            return unavailable("initdb/pg_ctl not found on PATH nor in /usr/lib/postgresql/*/bin");
        };
        let as_postgres = is_root();
        // /dev/shm when there is one: the server's files on tmpfs, like the benchmark's stores.
        let base = Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("pfxkit-pg-")
                .tempdir_in(base)
        } else {
            tempfile::Builder::new().prefix("pfxkit-pg-").tempdir()
        };
        let dir = match dir {
            Ok(d) => d,
            Err(e) => return unavailable(&format!("temporary directory: {e}")),
        };
        let server = TestPostgres {
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(server.dir.path())
                .status();
            if !chown.is_ok_and(|s| s.success()) {
                return unavailable("cannot hand the temporary directory to the postgres user");
            }
        }
        let data = server.data_dir();
        let init = server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        );
        match init {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return unavailable(&format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Err(e) => return unavailable(&format!("initdb: {e}")),
        }
        if let Err(why) = server.pg_ctl_start() {
            return unavailable(&why);
        }
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> std::io::Result<Output> {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args).current_dir(self.dir.path()).output()
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses='' -k {} -p {PORT} -c unix_socket_permissions=0700 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=200 -c shared_buffers=64MB",
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let data = self.data_dir();
        let out = self
            .run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    options.as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "start".as_ref(),
                ],
            )
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    /// Stops the server (fast shutdown: open connections are ended).
    pub fn stop(&self) {
        let data = self.data_dir();
        let out = self
            .run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    "fast".as_ref(),
                    "-w".as_ref(),
                    "stop".as_ref(),
                ],
            )
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again after [`stop`](Self::stop).
    pub fn restart(&self) {
        self.pg_ctl_start().unwrap();
    }

    /// Connection parameters for database `db`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname={db}",
            self.dir.path().display()
        )
    }

    /// A new, empty database; returns its connection parameters.
    pub fn create_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::SeqCst);
        let name = format!("pfxkit_test_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.conninfo("postgres"), postgres::NoTls)
            .expect("connect to the test server");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.conninfo(&name)
    }

    /// Runs a PostgreSQL client tool (e.g. `pg_dump`) as the server's user; returns stdout.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let out = self.run(tool, &args).unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }
}
