//! The compiled-code cache: components compiled once are kept on disk as
//! native code (`.cwasm`), so a restart or the return of a known version
//! skips Cranelift.
//!
//! An entry is named after the SHA-256 of the component's bytes and a
//! digest of the engine's compatibility hash (wasmtime version, target,
//! compiler settings), so a changed plugin or engine never hits a stale
//! entry. Entries are written to a temporary name and renamed, and end with
//! the SHA-256 of their contents: a truncated or corrupt entry is discarded
//! and the component compiled again.
//!
//! # Trust
//!
//! Loading an entry runs its native code unchecked
//! ([`Component::deserialize`] is `unsafe`): whoever can write the cache
//! directory can run code in the host, outside the sandbox. The cache
//! therefore only uses a directory that is ours alone: created `0700`,
//! owned by the host's user and not writable by group or others (checked
//! on Unix when it is opened; otherwise the cache is off). The checksum
//! guards against accidents (a crash mid-write, a full disk), not attackers.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The suffix of cache entries.
const EXTENSION: &str = "cwasm";
/// Bytes of the checksum that ends every entry.
const CHECKSUM_LEN: usize = 32;
/// Bytes of entries kept; the least recently used beyond are deleted (a
/// compiled Rust plugin takes ~0.4 MB, a JavaScript or Python one ~50 MB).
const MAX_BYTES: u64 = 1 << 30;
/// Age past which a temporary file is a crash's leftover.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(600);

/// What the cache did since the runtime started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Components loaded from an entry.
    pub hits: u64,
    /// Components compiled (no usable entry).
    pub misses: u64,
    /// Entries found corrupt or incompatible, deleted and recompiled.
    pub discarded: u64,
}

/// A directory of compiled components for one engine configuration.
pub(crate) struct CodeCache {
    dir: PathBuf,
    /// Digest of the engine's compatibility hash, in every entry's name.
    engine_key: String,
    hits: AtomicU64,
    misses: AtomicU64,
    discarded: AtomicU64,
}

impl CodeCache {
    /// Opens (creating it `0700` if needed) the cache in `dir`; fails if
    /// the directory could be written by someone else.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> io::Result<Self> {
        create_private_dir(dir)?;
        check_private(dir)?;
        let mut hasher = DigestHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            discarded: get(&self.discarded),
        }
    }

    fn entry(&self, hash: &str) -> PathBuf {
        self.dir
            .join(format!("{hash}-{}.{EXTENSION}", self.engine_key))
    }

    /// The component whose bytes hash to `hash` (hex SHA-256), compiled
    /// with `compile` unless a valid entry exists; a fresh compilation is
    /// stored (failing to store is logged, not an error).
    pub(crate) fn get_or_compile<E>(
        &self,
        engine: &Engine,
        name: &str,
        hash: &str,
        compile: impl FnOnce() -> Result<Component, E>,
    ) -> Result<Component, E> {
        let path = self.entry(hash);
        match self.load(engine, &path) {
            Ok(Some(component)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(plugin = %name, entry = %path.display(), "compiled code from the cache");
                return Ok(component);
            }
            Ok(None) => {}
            Err(error) => {
                self.discarded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(plugin = %name, entry = %path.display(), "discarding a cache entry, compiling again: {error}");
                let _ = fs::remove_file(&path);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let component = compile()?;
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(plugin = %name, entry = %path.display(), "cannot store compiled code: {error}");
        }
        Ok(component)
    }

    /// The entry's component; `None` if there is no entry; an error if it
    /// is unusable.
    fn load(&self, engine: &Engine, path: &Path) -> io::Result<Option<Component>> {
        let data = match fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let split = data
            .len()
            .checked_sub(CHECKSUM_LEN)
            .ok_or_else(|| invalid("shorter than its checksum"))?;
        let (code, checksum) = data.split_at(split);
        if Sha256::digest(code).as_slice() != checksum {
            return Err(invalid("checksum mismatch"));
        }
        // SAFETY: the bytes are what `Component::serialize` produced for
        // this engine configuration (the entry's name), written by this
        // cache into a directory only the host's user can write (checked
        // in `open`), and intact (checksum above). See the module docs.
        let component = unsafe { Component::deserialize(engine, code) }
            .map_err(|e| invalid(&super::error::one_line(&e)))?;
        // Recently used entries survive pruning.
        let _ = fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Ok(Some(component))
    }

    /// Writes `component` to `path` atomically, then prunes.
    fn store(&self, path: &Path, component: &Component) -> io::Result<()> {
        let mut data = component.serialize().map_err(|e| invalid(&e.to_string()))?;
        let checksum = Sha256::digest(&data);
        data.extend_from_slice(&checksum);
        let temp = temp_name(&self.dir);
        fs::write(&temp, &data)
            .and_then(|()| fs::rename(&temp, path))
            .inspect_err(|_| {
                let _ = fs::remove_file(&temp);
            })?;
        self.prune();
        Ok(())
    }

    /// Deletes entries of other engine configurations, the least recently
    /// used ones beyond [`MAX_BYTES`], and temporary files a crash left.
    fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let ours = format!("-{}.{EXTENSION}", self.engine_key);
        let mut kept = Vec::new();
        for entry in entries.flatten() {
            let (path, name) = (entry.path(), entry.file_name());
            let name = name.to_string_lossy();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().ok();
            let age = modified.and_then(|m| m.elapsed().ok()).unwrap_or_default();
            let stale_temp = name.ends_with(".tmp") && age > STALE_TEMP;
            if stale_temp || (name.ends_with(&format!(".{EXTENSION}")) && !name.ends_with(&ours)) {
                let _ = fs::remove_file(&path);
            } else if name.ends_with(&ours) {
                kept.push((std::cmp::Reverse(modified), meta.len(), path));
            }
        }
        kept.sort();
        let mut total = 0;
        for (_, len, path) in kept {
            total += len;
            if total > MAX_BYTES {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// A fresh name for a temporary file in `dir` (hidden, and not an entry).
fn temp_name(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{}-{n}.tmp", std::process::id()))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Refuses a directory that group or others may write, or that another
/// user owns (compared with the owner of a file we create in it).
#[cfg(unix)]
fn check_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir)?;
    if meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by group or others (mode {:o})",
                dir.display(),
                meta.mode() & 0o777
            ),
        ));
    }
    let probe = temp_name(dir);
    fs::write(&probe, b"")?;
    let ours = fs::metadata(&probe).map(|m| m.uid());
    let _ = fs::remove_file(&probe);
    if ours? != meta.uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is owned by another user", dir.display()),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the compiled-code cache is only trusted on Unix",
    ))
}

/// Feeds a [`Hash`] into SHA-256, for a digest stable across runs (unlike
/// `DefaultHasher`'s, which may change between Rust releases).
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use crate::{PluginRuntime, RuntimeOptions};

    #[cfg(unix)]
    #[test]
    fn a_cache_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let cache = tempfile::tempdir().unwrap();
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let runtime =
            PluginRuntime::with_code_cache(RuntimeOptions::default(), cache.path()).unwrap();
        assert_eq!(runtime.cache_stats(), None);
    }
}
