//! "One file is one store": the names under which a store's files are recorded in the catalog
//! (`store_files`, unique per host), so that registering a file again — by the same path,
//! through a link, or through `..` — is refused by one lookup in the same transaction as the
//! insert. Resolving every recorded store's path on each registration made setting up a fleet
//! quadratic (10,000 stores: tens of millions of `realpath` calls) and left a window in which
//! two concurrent registrations of one file both passed the check.

use std::path::{Path, PathBuf};

/// The host name under which the files of stores on the server's own host are recorded (an
/// agent's stores are recorded under the agent's name, which is never empty).
pub(crate) const SERVER_HOST: &str = "";

/// Migration 7 of both backends: the names of each store's files on its host, unique per host.
/// Rows for the stores recorded before it are computed by [`store_file_rows`] in the same
/// transaction (they need the file system, not SQL).
pub(crate) const STORE_FILES_MIGRATION: &str = r"
CREATE TABLE store_files (
    host      TEXT NOT NULL,
    file      TEXT NOT NULL,
    store_id  TEXT NOT NULL REFERENCES stores(id),
    PRIMARY KEY (host, file)
);
CREATE INDEX store_files_store ON store_files(store_id);
";

/// The schema version [`STORE_FILES_MIGRATION`] brings a catalog to.
pub(crate) const STORE_FILES_VERSION: usize = 7;

/// The `store_files` rows (host, file, store id) of stores given as (id, path, key path,
/// machine), in order: a file two of them share (recorded before "one file is one store" was
/// checked) is left to the first by the caller's insert-or-ignore.
pub(crate) fn store_file_rows(
    stores: Vec<(String, String, Option<String>, Option<String>)>,
) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for (id, path, key_path, machine) in stores {
        let keys = store_file_keys(
            Path::new(&path),
            key_path.as_deref().map(Path::new),
            machine.as_deref(),
        );
        let host = store_host(machine.as_deref()).to_string();
        rows.extend(
            keys.into_iter()
                .map(|file| (host.clone(), file, id.clone())),
        );
    }
    rows
}

/// The keys under which a store's files are recorded, in order and without repeats: for a store
/// on this host, each file's absolute path and the file it resolves to through links (both: a
/// link later pointed elsewhere still names the store it was registered as); for a store on an
/// agent's machine, its paths as given (this host can neither resolve links on that host nor
/// confuse them with its own).
pub(crate) fn store_file_keys(
    path: &Path,
    key_path: Option<&Path>,
    machine: Option<&str>,
) -> Vec<String> {
    let mut keys = Vec::new();
    for file in std::iter::once(path).chain(key_path) {
        let mut names = vec![file.to_path_buf()];
        if machine.is_none() {
            names.push(resolved(file));
        }
        for name in names {
            let key = name.to_string_lossy().into_owned();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The host under which a store's files are recorded.
pub(crate) fn store_host(machine: Option<&str>) -> &str {
    machine.unwrap_or(SERVER_HOST)
}

/// The file a path names once links are resolved: the whole path when it exists, else (a store
/// whose file its first write makes, or a dangling link to one) the links followed by hand and
/// the directory resolved with the file name appended.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let mut current = path.to_path_buf();
    // As many links as Linux follows (MAXSYMLINKS); a longer chain is left as it is.
    for _ in 0..40 {
        let is_link = std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink());
        let Ok(target) = std::fs::read_link(&current)
            .map_err(|_| ())
            .and_then(|t| if is_link { Ok(t) } else { Err(()) })
        else {
            break;
        };
        current = match current.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    match (current.parent(), current.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(current.clone()),
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_recorded_under_its_own_name_and_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(real.join("a.p12"), b"x").unwrap();
        std::os::unix::fs::symlink(real.join("a.p12"), real.join("link.p12")).unwrap();
        let keys = store_file_keys(&real.join("link.p12"), None, None);
        assert_eq!(
            keys,
            [
                real.join("link.p12").to_string_lossy(),
                real.join("a.p12").to_string_lossy()
            ]
        );
        // A file not yet written resolves through its directory; no repeats.
        let keys = store_file_keys(&real.join("new.pem"), Some(&real.join("new.key")), None);
        assert_eq!(
            keys,
            [
                real.join("new.pem").to_string_lossy(),
                real.join("new.key").to_string_lossy()
            ]
        );
        // An agent's paths are taken as given.
        let keys = store_file_keys(Path::new("/srv/x/../a.p12"), None, Some("web1"));
        assert_eq!(keys, ["/srv/x/../a.p12"]);
    }
}
