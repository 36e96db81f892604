//! Crash-safe file changes: a lock file, write-beside + fsync + rename, and a journal that
//! makes a change of several files (a PEM certificate and its separate key) all-or-nothing.
//!
//! Protocol for a commit of files F1…Fn:
//! 1. write each new content to a temporary file beside its target, fsync it;
//! 2. (n > 1 only) write the journal `<first target>.journal` naming each target and what
//!    becomes of it (its temporary installed, or the file removed), fsync it and the
//!    directory — **the commit point**;
//! 3. rename each temporary over its target (or remove the target), fsync the directory;
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
//!
//! # Files written by someone else
//!
//! A store may sit in a directory other users can write (a sticky `/tmp`, a shared volume), and
//! recovery runs even for a read-only inventory, as whoever asks — often root. So, in the spirit
//! of OpenSSH's `StrictModes`:
//!
//! - the journal only ever names the store's own files: recovery installs `<file>.pfxkit-tmp`
//!   over `<file>` (or removes `<file>`) for the files of this lock and nothing else, and refuses
//!   a journal that names anything more;
//! - the journal, the lock file and every temporary must be regular files owned by the store
//!   file's owner, the effective user or root, and not writable by other users (the lock not
//!   openable by them either), or the operation stops with [`Error::UnsafePath`] before anything
//!   is renamed or removed;
//! - lock files and temporaries are opened with `O_NOFOLLOW` (and created with `O_EXCL`), so a
//!   planted symbolic link is never followed or written through;
//! - a store in a directory that other users can write and that has no sticky bit is refused
//!   unless [`WriteOptions::allow_shared_dir`] says otherwise: there anyone can rename the
//!   store's files;
//! - a store path that is a symbolic link is resolved once, when the lock is taken (only a link
//!   owned by root, the effective user or the directory's owner is followed, as Linux's
//!   `fs.protected_symlinks` does), and the target is changed in its own directory, so a link
//!   stays a link and the store never forks;
//! - waiting for the lock is bounded ([`WriteOptions::lock_timeout`], 30 s by default).

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const TMP_MARKER: &str = ".pfxkit-tmp";

/// First bytes of a journal written by this version: a list of (`install` | `remove`, target).
/// Journals without it are the earlier list of (temporary, target) pairs.
const JOURNAL_MAGIC: &[u8] = b"pfxkit-journal 2\0";

/// A journal names a few paths; anything longer was not written by pfxkit.
const MAX_JOURNAL_LEN: u64 = 64 * 1024;

/// How long [`StoreLock::acquire`] waits for another process by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags for every file this module opens by name: never through a symbolic link, never
/// inherited by a child process.
const NOFOLLOW: i32 = libc::O_NOFOLLOW | libc::O_CLOEXEC;

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

/// How a store takes its lock and writes its files.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Keep the previous version of each file as `<file>.bak`.
    pub backup: bool,
    /// Fail deliberately at this step (tests only).
    pub fault: Option<FaultPoint>,
    /// How long to wait for another process's lock before failing with
    /// [`Error::StoreLocked`]. Default [`DEFAULT_LOCK_TIMEOUT`] (30 s).
    pub lock_timeout: Duration,
    /// Accept a store in a directory other users can write that has no sticky bit (refused by
    /// default: any of them could replace the store's files).
    pub allow_shared_dir: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            backup: false,
            fault: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            allow_shared_dir: false,
        }
    }
}

impl WriteOptions {
    /// With or without `.bak` copies of the previous versions.
    #[must_use]
    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }

    /// Failing deliberately at `fault` (tests only).
    #[must_use]
    pub fn fault(mut self, fault: Option<FaultPoint>) -> Self {
        self.fault = fault;
        self
    }

    /// Waiting at most `timeout` for the lock.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Accepting (or not) a store in a directory others can write without a sticky bit.
    #[must_use]
    pub fn allow_shared_dir(mut self, allow: bool) -> Self {
        self.allow_shared_dir = allow;
        self
    }
}

/// The users whose files beside a store are trusted: the store file's owner, the effective
/// user and root. Anyone else's journal, lock or temporary was planted.
#[derive(Clone, Copy, Debug)]
struct Trust {
    store_owner: u32,
    effective: u32,
}

impl Trust {
    fn for_store(store: &Path) -> Self {
        let effective = effective_uid();
        let store_owner = fs::symlink_metadata(store)
            .map(|m| m.uid())
            .unwrap_or(effective);
        Trust {
            store_owner,
            effective,
        }
    }

    fn trusts(&self, uid: u32) -> bool {
        uid == 0 || uid == self.effective || uid == self.store_owner
    }

    /// Refuses `what` at `path` unless it is a regular file of a trusted user that other users
    /// cannot write (`others_mask` 0o002), or open at all (0o006, for the lock file).
    fn check(&self, path: &Path, meta: &Metadata, what: &str, others_mask: u32) -> Result<()> {
        let refuse = |reason: String| {
            Err(Error::UnsafePath {
                path: path.to_path_buf(),
                reason,
            })
        };
        if !meta.file_type().is_file() {
            return refuse(format!(
                "the store's {what} is not a regular file (a link or special file was put in \
                 its place); nothing was changed: inspect it and remove it"
            ));
        }
        if !self.trusts(meta.uid()) {
            return refuse(format!(
                "the store's {what} is owned by uid {}, neither the store's owner (uid {}), \
                 this user (uid {}) nor root: another user may have planted it; nothing was \
                 changed: inspect it and remove it",
                meta.uid(),
                self.store_owner,
                self.effective
            ));
        }
        if meta.mode() & others_mask != 0 {
            return refuse(format!(
                "the store's {what} is {} by other users (mode {:o}); nothing was changed: \
                 inspect it and remove it",
                if others_mask & 0o004 != 0 {
                    "readable or writable"
                } else {
                    "writable"
                },
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    }
}

fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// What a journal says becomes of one of the store's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Rename `<file>.pfxkit-tmp` over the file.
    Install(usize),
    /// Remove the file.
    Remove(usize),
}

/// An exclusive lock on a store, held through a lock file beside it (`<file>.lock`). Serialises
/// writers across threads and processes; released on drop. Lock files are never deleted:
/// removing one while another process waits on it would let two writers in.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    /// The store's files as the caller named them.
    requested: Vec<PathBuf>,
    /// The same files as written: a symbolic link's target in place of the link.
    targets: Vec<PathBuf>,
    trust: Trust,
}

impl StoreLock {
    /// Takes the lock for the store whose files are `targets` (the first names the lock file),
    /// then recovers from any interrupted change.
    ///
    /// # Errors
    /// [`Error::UnsafePath`] for a directory others can write (unless allowed), a symbolic link
    /// that is not followed, or a journal, lock file or temporary someone else could have
    /// written; [`Error::Invalid`] when two of `targets` are one file; [`Error::StoreLocked`]
    /// when another process holds the lock longer than [`WriteOptions::lock_timeout`];
    /// [`Error::Io`] when the lock file cannot be created or locked, or recovery fails.
    pub fn acquire(targets: &[&Path], options: &WriteOptions) -> Result<Self> {
        let first = targets
            .first()
            .ok_or_else(|| Error::Invalid("a store has at least one file".into()))?;
        let mut resolved: Vec<PathBuf> = Vec::with_capacity(targets.len());
        for target in targets {
            let path = resolve(target, options.allow_shared_dir)?;
            check_dir(dir_of(&path), options.allow_shared_dir)?;
            if let Some(earlier) = resolved.iter().find(|p| same_file(p, &path)) {
                return Err(Error::Invalid(format!(
                    "{} and {} are the same file: each of a store's files must be its own (a \
                     key path equal to the certificate path would write one over the other)",
                    earlier.display(),
                    target.display()
                )));
            }
            resolved.push(path);
        }
        let main = resolved.first().map(PathBuf::as_path).unwrap_or(first);
        let trust = Trust::for_store(main);
        let lock_path = sibling(main, ".lock");
        let file = open_lock(&lock_path, &trust)?;
        wait_for_lock(&file, &lock_path, options.lock_timeout)?;
        let lock = StoreLock {
            file,
            requested: targets.iter().map(|p| p.to_path_buf()).collect(),
            targets: resolved,
            trust,
        };
        lock.recover()?;
        Ok(lock)
    }

    /// The path to read `file` (one of the paths the lock was taken for) from: the target of a
    /// symbolic link, resolved once when the lock was taken. Other paths are returned as given.
    pub fn file<'a>(&'a self, file: &'a Path) -> &'a Path {
        self.index_of(file)
            .and_then(|i| self.targets.get(i))
            .map_or(file, PathBuf::as_path)
    }

    fn index_of(&self, file: &Path) -> Option<usize> {
        self.requested
            .iter()
            .position(|p| p == file)
            .or_else(|| self.targets.iter().position(|p| p == file))
    }

    fn target(&self, index: usize) -> Result<&Path> {
        self.targets
            .get(index)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::Invalid("a file outside the store".into()))
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
        if let Some(text) = self.read_journal(&journal)? {
            let steps = self.parse_journal(&journal, &text)?;
            // Every temporary is checked before anything is renamed.
            for step in &steps {
                if let Step::Install(i) = step {
                    self.leftover(&sibling(self.target(*i)?, TMP_MARKER), "temporary")?;
                }
            }
            for step in steps {
                match step {
                    Step::Install(i) => {
                        let target = self.target(i)?;
                        let tmp = sibling(target, TMP_MARKER);
                        if self.leftover(&tmp, "temporary")? {
                            fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
                        }
                    }
                    Step::Remove(i) => remove_if_present(self.target(i)?)?,
                }
            }
            sync_dirs(&self.targets)?;
            fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
            sync_dirs(&self.targets)?;
        }
        // Temporaries with no journal never reached the commit point. That includes those of
        // the journal itself (a crash before its rename) and of backups, which are named after
        // `<target>.journal` and `<target>.bak` rather than the target.
        self.remove_leftover(&sibling(&journal, TMP_MARKER), "journal temporary")?;
        for target in &self.targets {
            self.remove_leftover(&sibling(target, TMP_MARKER), "temporary")?;
            self.remove_leftover(
                &sibling(&sibling(target, ".bak"), TMP_MARKER),
                "backup temporary",
            )?;
        }
        Ok(())
    }

    /// The journal's bytes, when there is one that the store's owner (or this user, or root)
    /// wrote and others cannot change.
    fn read_journal(&self, journal: &Path) -> Result<Option<Vec<u8>>> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(NOFOLLOW | libc::O_NONBLOCK)
            .open(journal)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(link_refused(journal, "journal"));
            }
            Err(e) => return Err(Error::io(journal, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(journal, e))?;
        self.trust.check(journal, &meta, "journal", 0o002)?;
        let mut text = Vec::new();
        file.take(MAX_JOURNAL_LEN + 1)
            .read_to_end(&mut text)
            .map_err(|e| Error::io(journal, e))?;
        if text.len() as u64 > MAX_JOURNAL_LEN {
            return Err(Error::UnsafePath {
                path: journal.to_path_buf(),
                reason: "the journal is far longer than any pfxkit writes; nothing was \
                         changed: inspect it and remove it"
                    .into(),
            });
        }
        Ok(Some(text))
    }

    /// The journal's steps, each about one of this store's files, or a refusal naming what
    /// the journal says that no journal of this store could.
    fn parse_journal(&self, journal: &Path, text: &[u8]) -> Result<Vec<Step>> {
        use std::os::unix::ffi::OsStrExt;
        let foreign = |what: &[u8]| Error::UnsafePath {
            path: journal.to_path_buf(),
            reason: format!(
                "the journal names {:?}, which is not one of this store's files or their fixed \
                 temporaries (it was not written by pfxkit for this store, or the store's \
                 paths changed since); nothing was renamed: inspect it and remove it",
                String::from_utf8_lossy(what)
            ),
        };
        let own = |bytes: &[u8]| {
            let path = Path::new(std::ffi::OsStr::from_bytes(bytes));
            self.index_of(path)
        };
        let mut steps = Vec::new();
        if let Some(rest) = text.strip_prefix(JOURNAL_MAGIC) {
            let parts: Vec<&[u8]> = rest.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
            for pair in parts.chunks(2) {
                let (op, target) = match pair {
                    [op, target] => (*op, *target),
                    _ => return Err(foreign(pair.first().copied().unwrap_or_default())),
                };
                let i = own(target).ok_or_else(|| foreign(target))?;
                steps.push(match op {
                    b"install" => Step::Install(i),
                    b"remove" => Step::Remove(i),
                    other => return Err(foreign(other)),
                });
            }
        } else {
            // The earlier format: (temporary, target) pairs, accepted only when each pair is
            // a file of this store and its own fixed temporary.
            let parts: Vec<&[u8]> = text.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
            for pair in parts.chunks(2) {
                let (tmp, target) = match pair {
                    [tmp, target] => (*tmp, *target),
                    _ => return Err(foreign(pair.first().copied().unwrap_or_default())),
                };
                let i = own(target).ok_or_else(|| foreign(target))?;
                let fixed = |p: &PathBuf| sibling(p, TMP_MARKER).as_os_str().as_bytes() == tmp;
                let is_fixed = self.requested.get(i).is_some_and(fixed)
                    || self.targets.get(i).is_some_and(fixed);
                if !is_fixed {
                    return Err(foreign(tmp));
                }
                steps.push(Step::Install(i));
            }
        }
        Ok(steps)
    }

    /// Whether a leftover file exists at `path`, after refusing one someone else could have
    /// written.
    fn leftover(&self, path: &Path, what: &str) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(meta) => {
                self.trust.check(path, &meta, what, 0o002)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn remove_leftover(&self, path: &Path, what: &str) -> Result<()> {
        if self.leftover(path, what)? {
            remove_if_present(path)?;
        }
        Ok(())
    }

    /// Replaces the contents of the store's files all at once: each `(target, bytes)`, where
    /// `target` is one of the paths the lock was taken for. New files are created 0600;
    /// existing files keep their mode and owner.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a path that is not one of the store's files; [`Error::Io`] on any
    /// failure (including an injected fault); the files then hold their previous contents, or
    /// the new ones once recovery has rolled forward.
    pub fn commit(&self, files: &[(&Path, &[u8])], options: &WriteOptions) -> Result<()> {
        let changes = files
            .iter()
            .map(|(path, bytes)| Ok((self.own_index(path)?, Some(*bytes))))
            .collect::<Result<Vec<_>>>()?;
        self.apply(&changes, options)
    }

    /// Removes the store's `files` all at once (a journal makes the removal of several
    /// all-or-nothing, as for [`StoreLock::commit`]); files already absent are fine.
    ///
    /// # Errors
    /// As [`StoreLock::commit`].
    pub fn remove(&self, files: &[&Path], options: &WriteOptions) -> Result<()> {
        let changes = files
            .iter()
            .map(|path| Ok((self.own_index(path)?, None)))
            .collect::<Result<Vec<_>>>()?;
        self.apply(&changes, options)
    }

    fn own_index(&self, path: &Path) -> Result<usize> {
        self.index_of(path).ok_or_else(|| {
            Error::Invalid(format!(
                "{} is not one of the files this store lock was taken for",
                path.display()
            ))
        })
    }

    /// Each `(index of a target, new bytes or None to remove it)`, all or nothing.
    fn apply(&self, changes: &[(usize, Option<&[u8]>)], options: &WriteOptions) -> Result<()> {
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
            for (i, _) in changes {
                let target = self.target(*i)?;
                if target.exists() {
                    let bak = sibling(target, ".bak");
                    let previous = fs::read(target).map_err(|e| Error::io(target, e))?;
                    let (tmp, file) = self.write_temp(&bak, &previous, Some(target))?;
                    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
                    fs::rename(&tmp, &bak).map_err(|e| Error::io(&bak, e))?;
                }
            }
        }
        let journal = self.journal_path();
        let multi = changes.len() > 1;
        let mut temps: Vec<(PathBuf, File)> = Vec::with_capacity(changes.len());
        let mut journal_temp = None;
        let prepared = (|| -> Result<()> {
            for (i, bytes) in changes {
                if let Some(bytes) = bytes {
                    let target = self.target(*i)?;
                    temps.push(self.write_temp(target, bytes, Some(target))?);
                }
            }
            fault(FaultPoint::AfterWriteTemp)?;
            for (path, file) in &temps {
                file.sync_all().map_err(|e| Error::io(path, e))?;
            }
            fault(FaultPoint::AfterSyncTemp)?;
            if multi {
                let mut text = JOURNAL_MAGIC.to_vec();
                for (i, bytes) in changes {
                    text.extend_from_slice(if bytes.is_some() {
                        b"install\0"
                    } else {
                        b"remove\0"
                    });
                    text.extend_from_slice(self.target(*i)?.as_os_str().as_encoded_bytes());
                    text.push(0);
                }
                let (jtmp, jfile) = self.write_temp(&journal, &text, None)?;
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
        for (n, (i, bytes)) in changes.iter().enumerate() {
            let target = self.target(*i)?;
            if bytes.is_some() {
                let tmp = sibling(target, TMP_MARKER);
                fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
            } else {
                remove_if_present(target)?;
            }
            if n == 0 && multi {
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

    /// Creates the temporary of `target` with `bytes`, never through a link; the mode and
    /// owner are copied from `like` when it exists, else 0600 (owned by the store's owner when
    /// this process may give files away).
    fn write_temp(
        &self,
        target: &Path,
        bytes: &[u8],
        like: Option<&Path>,
    ) -> Result<(PathBuf, File)> {
        let tmp = sibling(target, TMP_MARKER);
        // Recovery removed any leftover when the lock was taken; this covers one a failed
        // commit under this same lock left, after the same checks.
        self.remove_leftover(&tmp, "temporary")?;
        let mut file = create_new_private(&tmp)?;
        let like = like
            .and_then(|p| fs::symlink_metadata(p).ok())
            .filter(Metadata::is_file);
        let (uid, gid) = match &like {
            Some(meta) => {
                file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .map_err(|e| Error::io(&tmp, e))?;
                (meta.uid(), meta.gid())
            }
            None => (self.trust.store_owner, u32::MAX),
        };
        // Only root can give a file away; anyone else already owns what they create.
        let gid = (gid != u32::MAX).then_some(gid);
        if let Err(e) = std::os::unix::fs::fchown(&file, Some(uid), gid)
            && e.kind() != std::io::ErrorKind::PermissionDenied
        {
            return Err(Error::io(&tmp, e));
        }
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        Ok((tmp, file))
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The path a store file is written at: `path` itself, or the target of the symbolic link at
/// `path`, resolved once. A link is followed only when root, this user or the owner of its
/// directory made it (anyone else's link in a sticky directory is the classic attack) and it
/// leads to an existing regular file.
fn resolve(path: &Path, allow_shared_dir: bool) -> Result<PathBuf> {
    let refuse = |reason: String| {
        Err(Error::UnsafePath {
            path: path.to_path_buf(),
            reason,
        })
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.file_type().is_file() {
        return Ok(path.to_path_buf());
    }
    if !meta.file_type().is_symlink() {
        return refuse("a store file must be a regular file".into());
    }
    let dir = dir_of(path);
    check_dir(dir, allow_shared_dir)?;
    let dir_owner = fs::metadata(dir).map_err(|e| Error::io(dir, e))?.uid();
    let effective = effective_uid();
    if ![0, effective, dir_owner].contains(&meta.uid()) {
        return refuse(format!(
            "the store path is a symbolic link owned by uid {}, neither this user, root nor the \
             directory's owner: it is not followed; give the real path",
            meta.uid()
        ));
    }
    let target = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) => {
            return refuse(format!(
                "the store path is a symbolic link to a missing or unreachable file ({e}): \
                 links are followed only to an existing store; give the real path"
            ));
        }
    };
    match fs::metadata(&target) {
        Ok(m) if m.is_file() => Ok(target),
        Ok(_) => refuse(format!(
            "the store path links to {}, which is not a regular file",
            target.display()
        )),
        Err(e) => Err(Error::io(&target, e)),
    }
}

/// Refuses a directory other users can write unless it has the sticky bit (there they cannot
/// rename or remove files they do not own) or shared directories were allowed by name.
fn check_dir(dir: &Path, allow_shared_dir: bool) -> Result<()> {
    if allow_shared_dir {
        return Ok(());
    }
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        // Writing into it will fail and say so.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(Error::UnsafePath {
            path: dir.to_path_buf(),
            reason: format!(
                "the directory is writable by other users and has no sticky bit (mode {:o}): \
                 any of them could replace the store's files or plant its journal; move the \
                 store to a private directory, or pass --allow-shared-dir \
                 (WriteOptions::allow_shared_dir) to accept the risk",
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// Opens (or creates, 0600) the lock file without following a link, and refuses one that
/// someone else made or that others can open (they could hold the lock forever).
fn open_lock(path: &Path, trust: &Trust) -> Result<File> {
    // A lock file created (or a link planted) by another process between the two opens costs
    // another round; a few rounds settle it.
    for _ in 0..3 {
        let existing = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let file = match existing {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(NOFOLLOW)
                    .open(path)
                {
                    Ok(file) => {
                        // Root creating another user's lock gives it to them, so that they can
                        // still open it.
                        if let Err(e) =
                            std::os::unix::fs::fchown(&file, Some(trust.store_owner), None)
                            && e.kind() != std::io::ErrorKind::PermissionDenied
                        {
                            return Err(Error::io(path, e));
                        }
                        return Ok(file);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(Error::io(path, e)),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(link_refused(path, "lock file"));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        trust.check(path, &meta, "lock file", 0o006)?;
        return Ok(file);
    }
    Err(Error::UnsafePath {
        path: path.to_path_buf(),
        reason: "the lock file keeps appearing and disappearing (a symbolic link put in its \
                 place?); nothing was changed"
            .into(),
    })
}

fn link_refused(path: &Path, what: &str) -> Error {
    Error::UnsafePath {
        path: path.to_path_buf(),
        reason: format!(
            "the store's {what} is a symbolic link, which pfxkit never follows (another user \
             may have planted it to make this process open another file); nothing was \
             changed: inspect it and remove it"
        ),
    }
}

/// Takes the lock, polling for at most `timeout`.
fn wait_for_lock(file: &File, path: &Path, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                let waited = started.elapsed();
                if waited >= timeout {
                    return Err(Error::StoreLocked {
                        path: path.to_path_buf(),
                        waited,
                    });
                }
                std::thread::sleep(pause.min(timeout - waited));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
    }
}

/// Creates `path` 0600 for writing: `O_CREAT | O_EXCL | O_NOFOLLOW`, so an existing file or a
/// link in its place makes it fail instead of being written through.
fn create_new_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Whether two paths name one file: the same inode, or (for files not there yet) the same name
/// in the same directory, however spelt (`dir/./a`, a linked directory).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b))
        && ma.dev() == mb.dev()
        && ma.ino() == mb.ino()
    {
        return true;
    }
    let place = |p: &Path| Some((fs::canonicalize(dir_of(p)).ok()?, p.file_name()?.to_owned()));
    match (place(a), place(b)) {
        (Some(pa), Some(pb)) => pa == pb,
        _ => a == b,
    }
}

/// Writes an output file (`pfxkit build --out`, an enrollment's PKCS#12) the way store files
/// are written: a temporary beside it created `O_EXCL | O_NOFOLLOW`, flushed, renamed over the
/// path, the directory flushed. A symbolic link at `path` is refused (never written through);
/// a new file is 0600; an existing file keeps its permission bits (not its owner: the result
/// belongs to whoever wrote it), except that a private key is never written into a file others
/// can read.
///
/// # Errors
/// [`Error::UnsafePath`] for a link, a file that is not regular, or a file others can read when
/// `holds_private_key`; [`Error::Io`] when writing fails (the path then keeps its old contents).
pub fn write_output(path: &Path, bytes: &[u8], holds_private_key: bool) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::UnsafePath {
            path: path.to_path_buf(),
            reason: reason.into(),
        })
    };
    let mode = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return refuse(
                "the output path is a symbolic link, which pfxkit does not write through (a \
                 link put there by someone else would send the file, and its key, wherever it \
                 points); remove it or give the real path",
            );
        }
        Ok(meta) if !meta.is_file() => return refuse("the output path is not a regular file"),
        Ok(meta) if holds_private_key && meta.mode() & 0o004 != 0 => {
            return refuse(
                "the existing file is readable by other users and the output holds a private \
                 key; nothing was written: remove the file or make it private (chmod o-r) first",
            );
        }
        Ok(meta) => meta.mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o600,
        Err(e) => return Err(Error::io(path, e)),
    };
    let tmp = sibling(path, TMP_MARKER);
    // A leftover of this user's own crashed write may go; anyone else's stays and fails the
    // create below.
    if let Ok(meta) = fs::symlink_metadata(&tmp)
        && meta.is_file()
        && meta.uid() == effective_uid()
    {
        remove_if_present(&tmp)?;
    }
    let written = (|| -> Result<()> {
        let mut file = create_new_private(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dirs(&[path.to_path_buf()])
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

/// The directory holding `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
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
        let dir = dir_of(p);
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
    fn reads_journals_of_both_formats_naming_own_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("cert.pem");
        let k = dir.path().join("key.pem");
        let lock = StoreLock::acquire(&[&a, &k], &WriteOptions::default()).unwrap();
        let journal = lock.journal_path();
        let bytes = |p: &Path| p.as_os_str().as_encoded_bytes().to_vec();
        let earlier = [
            bytes(&sibling(&a, TMP_MARKER)),
            bytes(&a),
            bytes(&sibling(&k, TMP_MARKER)),
            bytes(&k),
        ]
        .join(&0u8);
        assert_eq!(
            lock.parse_journal(&journal, &earlier).unwrap(),
            [Step::Install(0), Step::Install(1)]
        );
        let mut current = JOURNAL_MAGIC.to_vec();
        for (op, path) in [(&b"install"[..], &a), (&b"remove"[..], &k)] {
            current.extend_from_slice(op);
            current.push(0);
            current.extend(bytes(path));
            current.push(0);
        }
        assert_eq!(
            lock.parse_journal(&journal, &current).unwrap(),
            [Step::Install(0), Step::Remove(1)]
        );
        let foreign = [bytes(&dir.path().join("x")), bytes(&a)].join(&0u8);
        assert!(lock.parse_journal(&journal, &foreign).is_err());
        let foreign = [JOURNAL_MAGIC.to_vec(), b"install\0/etc/passwd".to_vec()].concat();
        assert!(lock.parse_journal(&journal, &foreign).is_err());
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
            let lock = StoreLock::acquire(&[&a, &b], &WriteOptions::default()).unwrap();
            let new_a = format!("{fault:?}-a");
            let new_b = format!("{fault:?}-b");
            let opts = WriteOptions::default().fault(Some(fault));
            assert!(
                lock.commit(&[(&a, new_a.as_bytes()), (&b, new_b.as_bytes())], &opts)
                    .is_err()
            );
            drop(lock);
            let _recovered = StoreLock::acquire(&[&a, &b], &WriteOptions::default()).unwrap();
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
            let lock = StoreLock::acquire(&[&a, &b], &WriteOptions::default()).unwrap();
            let opts = WriteOptions::default().fault(Some(fault));
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
        let lock = StoreLock::acquire(&[&new], &WriteOptions::default()).unwrap();
        lock.commit(&[(&new, b"n")], &WriteOptions::default())
            .unwrap();
        let lock2 = StoreLock::acquire(&[&old], &WriteOptions::default()).unwrap();
        lock2
            .commit(&[(&old, b"o")], &WriteOptions::default().backup(true))
            .unwrap();
        assert_eq!(fs::metadata(&new).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&old).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read(dir.path().join("old.p12.bak")).unwrap(), b"x");
        drop((lock, lock2));
    }
}
