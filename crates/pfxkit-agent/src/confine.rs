//! Confinement of the files an agent touches to the directories its operator named
//! (`pfxkit agent --root DIR`).
//!
//! Threat: whoever controls the server (or a catalog admin) chooses the paths of an agent's
//! stores. Unconfined, an agent — often running as root — would write a keystore over
//! `/etc/shadow`, `/root/.ssh/authorized_keys` or a systemd unit, or read such a file through an
//! inventory, because the server said so. With roots, every store file (certificate and key) is
//! checked before the store is opened:
//!
//! - the path's directory is resolved (`..` and symbolic links of the existing directories),
//!   and a final component that is a symbolic link is resolved too, so a link placed inside a
//!   root that points outside is refused;
//! - the resolved file must lie inside one of the roots (resolved once, at start);
//! - every directory from the root down to the file's must be writable by its owner only (or
//!   be sticky) and owned by root or this user: nobody else can then swap one of them for a
//!   link between this check and the write;
//! - the store is opened at the resolved path, so what was checked is what is written.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// The directories an agent may touch store files in, resolved once at start; empty means
/// unconfined (any path the server sends).
#[derive(Clone, Debug, Default)]
pub struct Roots {
    dirs: Vec<PathBuf>,
}

impl Roots {
    /// No confinement: the agent touches whatever paths the server sends.
    pub fn unconfined() -> Self {
        Roots::default()
    }

    /// The roots `dirs`, each resolved to its canonical path (symbolic links and `..` resolved
    /// now, once: a link changed later does not move a root).
    ///
    /// # Errors
    /// [`Error::Config`] naming a root that does not exist, cannot be resolved or is not a
    /// directory.
    pub fn resolve(dirs: &[PathBuf]) -> Result<Self> {
        let mut resolved: Vec<PathBuf> = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let canonical = std::fs::canonicalize(dir).map_err(|e| {
                Error::Config(format!(
                    "--root {}: {e} (a root must be an existing directory)",
                    dir.display()
                ))
            })?;
            if !canonical.is_dir() {
                return Err(Error::Config(format!(
                    "--root {}: not a directory",
                    dir.display()
                )));
            }
            if !resolved.contains(&canonical) {
                resolved.push(canonical);
            }
        }
        Ok(Roots { dirs: resolved })
    }

    /// Whether any root was given.
    pub fn is_confined(&self) -> bool {
        !self.dirs.is_empty()
    }

    /// The resolved roots.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn list(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn root_of(&self, path: &Path) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|root| path.starts_with(root) && path != root.as_path())
            .map(PathBuf::as_path)
    }

    fn outside(&self, path: &Path, why: &str) -> Error {
        Error::Confined(format!(
            "{} is outside the agent's roots ({}){why}: refused, nothing was read or written",
            path.display(),
            self.list()
        ))
    }

    /// The path to open for the store file `path`: unchanged when unconfined; otherwise the
    /// file's resolved path, after checking that it lies inside a root and that nobody but
    /// root or this user can change the directories leading to it.
    ///
    /// # Errors
    /// [`Error::Confined`] naming the path and the roots when the file is (or resolves)
    /// outside them, or when a directory on the way could be swapped by another user.
    pub fn confine(&self, path: &Path) -> Result<PathBuf> {
        if !self.is_confined() {
            return Ok(path.to_path_buf());
        }
        if !path.is_absolute() {
            return Err(self.outside(path, " (not an absolute path)"));
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(self.outside(path, " (it names no file)"));
        };
        let dir = match std::fs::canonicalize(parent) {
            Ok(dir) => dir,
            Err(e) => {
                // Whether a directory outside the roots exists is not the server's business:
                // only a path that lies inside a root on its face learns why it failed.
                return Err(if self.root_of(&lexical(path)).is_some() {
                    Error::Confined(format!(
                        "{}: its directory cannot be resolved ({e}); nothing was read or written",
                        path.display()
                    ))
                } else {
                    self.outside(path, "")
                });
            }
        };
        let mut file = dir.join(name);
        if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
            file = match std::fs::canonicalize(&file) {
                Ok(target) if self.root_of(&target).is_some() => target,
                Ok(target) => {
                    return Err(
                        self.outside(path, &format!(" (a symbolic link to {})", target.display()))
                    );
                }
                Err(_) => {
                    return Err(
                        self.outside(path, " (a symbolic link to a missing or unreachable file)")
                    );
                }
            };
        }
        let Some(root) = self.root_of(&file) else {
            return Err(if file.as_path() == path {
                self.outside(path, "")
            } else {
                self.outside(path, &format!(" (it resolves to {})", file.display()))
            });
        };
        check_chain(root, &file)?;
        Ok(file)
    }
}

/// `path` with `.` and `..` folded away without touching the file system (for messages only).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Refuses when a directory from `root` down to `file`'s could be changed by a user other than
/// root or this one: that user could swap a directory for a link outside the roots between the
/// check and the write.
fn check_chain(root: &Path, file: &Path) -> Result<()> {
    let effective = rustix::process::geteuid().as_raw();
    let mut dir = file.parent();
    while let Some(d) = dir {
        let meta = std::fs::symlink_metadata(d)
            .map_err(|e| Error::Confined(format!("{}: {e}", d.display())))?;
        let mode = meta.mode();
        if !meta.file_type().is_dir() {
            return Err(Error::Confined(format!(
                "{} is not a directory (it changed while being checked); nothing was read or \
                 written",
                d.display()
            )));
        }
        if meta.uid() != 0 && meta.uid() != effective {
            return Err(Error::Confined(format!(
                "{} is owned by uid {}, neither root nor this agent's user (uid {effective}): \
                 that user could swap it for a link outside the roots; nothing was read or \
                 written",
                d.display(),
                meta.uid()
            )));
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(Error::Confined(format!(
                "{} is writable by other users (mode {:o}) and not sticky: any of them could \
                 swap a directory or file in it for a link outside the roots; nothing was read \
                 or written",
                d.display(),
                mode & 0o7777
            )));
        }
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(tag: &str) -> PathBuf {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        let dir =
            std::env::temp_dir().join(format!("pfxkit-confine-{tag}-{}", u64::from_le_bytes(b)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::canonicalize(dir).unwrap()
    }

    #[test]
    fn dot_dot_out_of_a_root_is_refused_naming_the_path_and_the_roots() {
        // Threat: a server sending /srv/certs/../../etc/shadow.
        let base = temp("dotdot");
        let root = base.join("root");
        std::fs::create_dir(&root).unwrap();
        let roots = Roots::resolve(std::slice::from_ref(&root)).unwrap();
        let sneaky = root.join("..").join("victim");
        let err = roots.confine(&sneaky).unwrap_err().to_string();
        assert!(err.contains("outside the agent's roots"), "{err}");
        assert!(err.contains(&root.display().to_string()), "{err}");
        assert!(err.contains(&sneaky.display().to_string()), "{err}");
        assert_eq!(
            roots.confine(&root.join("a.p12")).unwrap(),
            root.join("a.p12")
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_directory_outside_the_roots_is_not_told_apart_by_existence() {
        // Threat: a server probing which directories exist on the host.
        let base = temp("probe");
        let root = base.join("root");
        std::fs::create_dir(&root).unwrap();
        let roots = Roots::resolve(std::slice::from_ref(&root)).unwrap();
        let missing = roots
            .confine(&base.join("nope").join("a.p12"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("outside the agent's roots"), "{missing}");
        let inside_missing = roots
            .confine(&root.join("nope").join("a.p12"))
            .unwrap_err()
            .to_string();
        assert!(
            inside_missing.contains("cannot be resolved"),
            "{inside_missing}"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_root_inside_a_directory_others_can_write_is_refused_at_use() {
        // Threat: another local user swapping a directory for a link between check and write.
        let base = temp("shared");
        let root = base.join("root");
        let sub = root.join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let roots = Roots::resolve(std::slice::from_ref(&root)).unwrap();
        let err = roots.confine(&sub.join("a.p12")).unwrap_err().to_string();
        assert!(err.contains("writable by other users"), "{err}");
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            roots.confine(&sub.join("a.p12")).unwrap(),
            sub.join("a.p12")
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_root_that_is_a_file_or_missing_is_a_configuration_error() {
        let base = temp("badroot");
        let file = base.join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            Roots::resolve(std::slice::from_ref(&file)),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Roots::resolve(&[base.join("missing")]),
            Err(Error::Config(_))
        ));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn unconfined_roots_leave_paths_as_given() {
        let roots = Roots::unconfined();
        assert!(!roots.is_confined());
        assert_eq!(
            roots.confine(Path::new("/etc/x/../y")).unwrap(),
            PathBuf::from("/etc/x/../y")
        );
    }
}
