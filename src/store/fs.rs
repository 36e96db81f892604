//! Crash-safe file changes: a lock file, write-beside + fsync + rename, and a journal that
//! makes a change of several files (a PEM certificate and its separate key) all-or-nothing.
//!
//! Protocol for a commit of files F1…Fn:
//! 1. write each new content to a temporary file beside its target, fsync it;
//! 2. (n > 1 only) write the journal `<first target>.journal` naming each (temporary, target)
//!    pair, fsync it and the directory — **the commit point**;
//! 3. rename each temporary over its target, fsync the directory;
//! 4. remove the journal, fsync the directory.
//!
//! Recovery, run under the lock before every read or write: a journal means the commit point was
//! passed, so the remaining renames are completed (roll forward); temporaries without a journal
//! are from a change that never committed and are removed (roll back). Either way the files hold
//! the old set or the new set, never a mix.
//!
//! Each file's temporary has one fixed name, `<file>.pfxkit-tmp`: the lock admits one writer at a
//! time, so names need not differ between writers, and recovery checks a few known paths instead
//! of listing the directory (a fleet of stores in one directory made every job cost a listing of
//! all of them, and a Replace quadratic).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TMP_MARKER: &str = ".pfxkit-tmp";

/// A step of the write path, for fault-injection tests: a commit configured to fail at a step
/// stops there with an I/O error, as a crash or a full disk would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultPoint {
    /// After the temporary files were written, before they are flushed.
    AfterWriteTemp,
    /// After the temporaries were flushed, before the journal (multi-file) or rename.
    AfterSyncTemp,
    /// After the journal was made durable, before any rename (multi-file commits only).
    AfterJournal,
    /// After the first rename, before the others (multi-file commits only).
    AfterFirstRename,
    /// After every rename, before the directory is flushed and the journal removed.
    AfterRenames,
}

impl FaultPoint {
    /// Every fault point, in the order the write path reaches them.
    pub const ALL: [FaultPoint; 5] = [
        FaultPoint::AfterWriteTemp,
        FaultPoint::AfterSyncTemp,
        FaultPoint::AfterJournal,
        FaultPoint::AfterFirstRename,
        FaultPoint::AfterRenames,
    ];
}

/// How a store writes its files.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Keep the previous version of each file as `<file>.bak`.
    pub backup: bool,
    /// Fail deliberately at this step (tests only).
    pub fault: Option<FaultPoint>,
}

/// An exclusive lock on a store, held through a lock file beside it (`<file>.lock`). Serialises
/// writers across threads and processes; released on drop. Lock files are never deleted:
/// removing one while another process waits on it would let two writers in.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    targets: Vec<PathBuf>,
}

impl StoreLock {
    /// Takes the lock for the store whose files are `targets` (the first names the lock file),
    /// then recovers from any interrupted change.
    ///
    /// # Errors
    /// [`Error::Io`] when the lock file cannot be created or locked, or recovery fails.
    pub fn acquire(targets: &[&Path]) -> Result<Self> {
        let first = targets
            .first()
            .ok_or_else(|| Error::Invalid("a store has at least one file".into()))?;
        let lock_path = sibling(first, ".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        file.lock().map_err(|e| Error::io(&lock_path, e))?;
        let lock = StoreLock {
            file,
            targets: targets.iter().map(|p| p.to_path_buf()).collect(),
        };
        lock.recover()?;
        Ok(lock)
    }

    fn journal_path(&self) -> PathBuf {
        sibling(
            self.targets
                .first()
                .map(PathBuf::as_path)
                .unwrap_or(Path::new("store")),
            ".journal",
        )
    }

    /// Completes or undoes an interrupted change (see the module documentation).
    fn recover(&self) -> Result<()> {
        let journal = self.journal_path();
        match fs::read(&journal) {
            Ok(text) => {
                for (tmp, target) in parse_journal(&text) {
                    if tmp.exists() {
                        fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
                    }
                }
                sync_dirs(&self.targets)?;
                fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
                sync_dirs(&self.targets)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&journal, e)),
        }
        // Temporaries with no journal never reached the commit point. That includes those of
        // the journal itself (a crash before its rename) and of backups, which are named after
        // `<target>.journal` and `<target>.bak` rather than the target.
        remove_temporaries(&journal)?;
        for target in &self.targets {
            remove_temporaries(target)?;
            remove_temporaries(&sibling(target, ".bak"))?;
        }
        Ok(())
    }

    /// Replaces the contents of the store's files all at once: each `(target, bytes)`; a `None`
    /// content leaves that file untouched. New files are created 0600; existing files keep
    /// their mode and owner.
    ///
    /// # Errors
    /// [`Error::Io`] on any failure (including an injected fault); the files then hold their
    /// previous contents, or the new ones once recovery has rolled forward.
    pub fn commit(&self, files: &[(&Path, &[u8])], options: &WriteOptions) -> Result<()> {
        let fault = |point: FaultPoint| -> Result<()> {
            if options.fault == Some(point) {
                Err(Error::Io {
                    path: None,
                    source: std::io::Error::other(format!("injected fault at {point:?}")),
                })
            } else {
                Ok(())
            }
        };
        if options.backup {
            for (target, _) in files {
                if target.exists() {
                    let bak = sibling(target, ".bak");
                    let previous = fs::read(target).map_err(|e| Error::io(*target, e))?;
                    let tmp = write_temp(&bak, &previous, Some(target))?;
                    tmp.1.sync_all().map_err(|e| Error::io(&tmp.0, e))?;
                    fs::rename(&tmp.0, &bak).map_err(|e| Error::io(&bak, e))?;
                }
            }
        }
        let journal = self.journal_path();
        let multi = files.len() > 1;
        let mut temps = Vec::with_capacity(files.len());
        let mut journal_temp = None;
        let prepared = (|| -> Result<()> {
            for (target, bytes) in files {
                temps.push(write_temp(target, bytes, Some(target))?);
            }
            fault(FaultPoint::AfterWriteTemp)?;
            for (path, file) in &temps {
                file.sync_all().map_err(|e| Error::io(path, e))?;
            }
            fault(FaultPoint::AfterSyncTemp)?;
            if multi {
                let mut text = Vec::new();
                for ((tmp, _), (target, _)) in temps.iter().zip(files) {
                    text.extend_from_slice(tmp.as_os_str().as_encoded_bytes());
                    text.push(0);
                    text.extend_from_slice(target.as_os_str().as_encoded_bytes());
                    text.push(0);
                }
                let (jtmp, jfile) = write_temp(&journal, &text, None)?;
                journal_temp = Some(jtmp.clone());
                jfile.sync_all().map_err(|e| Error::io(&jtmp, e))?;
                fs::rename(&jtmp, &journal).map_err(|e| Error::io(&journal, e))?;
                sync_dirs(&self.targets)?;
                fault(FaultPoint::AfterJournal)?;
            }
            Ok(())
        })();
        if let Err(e) = prepared {
            // Before the commit point nothing changed: remove what was written (full copies of
            // the store, encrypted keys) rather than leave it for the next lock. Past it (the
            // journal exists), the temporaries are the new contents recovery will install.
            if !(multi && journal.exists()) {
                for (tmp, _) in &temps {
                    let _ = fs::remove_file(tmp);
                }
                if let Some(jtmp) = &journal_temp {
                    let _ = fs::remove_file(jtmp);
                }
            }
            return Err(e);
        }
        for (i, ((tmp, _), (target, _))) in temps.iter().zip(files).enumerate() {
            fs::rename(tmp, target).map_err(|e| Error::io(*target, e))?;
            if i == 0 && multi {
                fault(FaultPoint::AfterFirstRename)?;
            }
        }
        fault(FaultPoint::AfterRenames)?;
        sync_dirs(&self.targets)?;
        if multi {
            fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
            sync_dirs(&self.targets)?;
        }
        Ok(())
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// `dir/name` + suffix, e.g. `store.p12` → `store.p12.lock`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| "store".into());
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates a temporary beside `target` with `bytes`; the mode and owner are copied from
/// `like` when it exists, else 0600.
fn write_temp(target: &Path, bytes: &[u8], like: Option<&Path>) -> Result<(PathBuf, File)> {
    let tmp = sibling(target, TMP_MARKER);
    // Recovery removed any leftover when the lock was taken; this covers one that appeared
    // since (none can: the lock is held), so that `create_new` below never follows a link.
    remove_if_present(&tmp)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    if let Some(meta) = like.and_then(|p| fs::metadata(p).ok()) {
        file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io(&tmp, e))?;
        // Only root can give a file away; anyone else already owns what they create.
        if let Err(e) = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            && e.kind() != std::io::ErrorKind::PermissionDenied
        {
            return Err(Error::io(&tmp, e));
        }
    }
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    Ok((tmp, file))
}

fn parse_journal(text: &[u8]) -> Vec<(PathBuf, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let parts: Vec<&[u8]> = text.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
    parts
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [tmp, target] => Some((
                PathBuf::from(std::ffi::OsStr::from_bytes(tmp)),
                PathBuf::from(std::ffi::OsStr::from_bytes(target)),
            )),
            _ => None,
        })
        .collect()
}

/// Removes the temporary of `target`, if a change that never committed left one.
fn remove_temporaries(target: &Path) -> Result<()> {
    remove_if_present(&sibling(target, TMP_MARKER))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Flushes the directories holding `paths`, so renames survive a power loss.
fn sync_dirs(paths: &[PathBuf]) -> Result<()> {
    let mut done: Vec<&Path> = Vec::new();
    for p in paths {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if done.contains(&dir) {
            continue;
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
        done.push(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_paths() {
        let text = b"/a/x.tmp\0/a/x\0/a/k.tmp\0/a/k\0";
        let pairs = parse_journal(text);
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].1, PathBuf::from("/a/k"));
    }

    #[test]
    fn multi_file_commit_rolls_forward_after_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("cert.pem");
        let b = dir.path().join("key.pem");
        fs::write(&a, b"old-a").unwrap();
        fs::write(&b, b"old-b").unwrap();
        for fault in FaultPoint::ALL {
            let before = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
            let lock = StoreLock::acquire(&[&a, &b]).unwrap();
            let new_a = format!("{fault:?}-a");
            let new_b = format!("{fault:?}-b");
            let opts = WriteOptions {
                backup: false,
                fault: Some(fault),
            };
            assert!(
                lock.commit(&[(&a, new_a.as_bytes()), (&b, new_b.as_bytes())], &opts)
                    .is_err()
            );
            drop(lock);
            let _recovered = StoreLock::acquire(&[&a, &b]).unwrap();
            let after = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
            let committed = matches!(
                fault,
                FaultPoint::AfterJournal | FaultPoint::AfterFirstRename | FaultPoint::AfterRenames
            );
            if committed {
                assert_eq!(after, (new_a.into_bytes(), new_b.into_bytes()), "{fault:?}");
            } else {
                assert_eq!(after, before, "{fault:?}");
            }
            let leftovers: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(TMP_MARKER))
                .collect();
            assert!(leftovers.is_empty(), "{fault:?}: {leftovers:?}");
        }
    }

    #[test]
    fn a_commit_failing_before_its_commit_point_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("cert.pem");
        let b = dir.path().join("key.pem");
        for fault in [FaultPoint::AfterWriteTemp, FaultPoint::AfterSyncTemp] {
            let lock = StoreLock::acquire(&[&a, &b]).unwrap();
            let opts = WriteOptions {
                backup: false,
                fault: Some(fault),
            };
            assert!(lock.commit(&[(&a, b"a"), (&b, b"b")], &opts).is_err());
            let left: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(TMP_MARKER))
                .collect();
            assert!(left.is_empty(), "{fault:?}: {left:?}");
            assert!(!a.exists() && !b.exists());
        }
    }

    #[test]
    fn new_files_are_private_and_existing_files_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.p12");
        let old = dir.path().join("old.p12");
        fs::write(&old, b"x").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o640)).unwrap();
        let lock = StoreLock::acquire(&[&new]).unwrap();
        lock.commit(&[(&new, b"n")], &WriteOptions::default())
            .unwrap();
        let lock2 = StoreLock::acquire(&[&old]).unwrap();
        lock2
            .commit(
                &[(&old, b"o")],
                &WriteOptions {
                    backup: true,
                    fault: None,
                },
            )
            .unwrap();
        assert_eq!(fs::metadata(&new).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&old).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read(dir.path().join("old.p12.bak")).unwrap(), b"x");
        drop((lock, lock2));
    }
}
