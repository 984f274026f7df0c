//! Pre-warm: read every block of the chain data once, with bounded parallelism.
//!
//! A volume created from a snapshot fetches each block from S3 the first time it is read, so a node
//! restored from a snapshot is slow exactly when it needs to catch up. Reading everything once in the
//! background, while the clients start, pays that cost early and at full queue depth. Only the files are
//! read (not the raw device): that is every block a snapshot holds, and it works inside the container.

use crate::Shared;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Something readable at an offset: a file, or in tests a file wrapped to count reads.
pub trait ReadAt: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> u64;
    /// Whether there is nothing to read.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads into `buf` at `offset`; returns the bytes read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn len(&self) -> u64 {
        self.metadata().map_or(0, |m| m.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

/// Pre-warm settings.
#[derive(Debug, Clone, Copy)]
pub struct Prewarm {
    /// Reads in flight at most (worker threads).
    pub parallelism: usize,
    /// Bytes per read.
    pub block: usize,
}

/// Progress as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrewarmProgress {
    /// What is read.
    pub path: PathBuf,
    /// Files found.
    pub files: u64,
    /// Bytes to read.
    pub bytes_total: u64,
    /// Bytes read so far.
    pub bytes_done: u64,
    /// Average rate so far, MB/s (10^6 bytes).
    pub mb_per_sec: f64,
    /// Seconds left at that rate.
    pub eta_secs: Option<f64>,
    /// Finished (possibly with errors).
    pub done: bool,
    /// Read errors (a file removed meanwhile, …); the rest goes on.
    pub errors: u64,
}

/// Reads every byte of `sources` (in `block`-sized reads, each offset of each source exactly once) with
/// at most `parallelism` reads in flight; `done` counts bytes as they are read. Returns read errors.
pub fn prewarm_source(sources: &[Box<dyn ReadAt>], p: Prewarm, done: &AtomicU64) -> u64 {
    let block = p.block.max(1) as u64;
    // One cursor over the concatenation of all sources: (source index, next offset).
    let cursor = Mutex::new((0usize, 0u64));
    let errors = AtomicU64::new(0);
    let next = || -> Option<(usize, u64, u64)> {
        let mut c = cursor.lock().unwrap_or_else(|e| e.into_inner());
        while c.0 < sources.len() {
            let len = sources[c.0].len();
            if c.1 < len {
                let (i, off) = *c;
                let n = block.min(len - off);
                c.1 += n;
                return Some((i, off, n));
            }
            *c = (c.0 + 1, 0);
        }
        None
    };
    std::thread::scope(|scope| {
        for _ in 0..p.parallelism.max(1) {
            scope.spawn(|| {
                let mut buf = vec![0u8; block as usize];
                while let Some((i, off, n)) = next() {
                    let mut got = 0u64;
                    while got < n {
                        match sources[i].read_at(&mut buf[got as usize..n as usize], off + got) {
                            Ok(0) => break,
                            Ok(k) => got += k as u64,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                    done.fetch_add(got, Ordering::Relaxed);
                }
            });
        }
    });
    errors.into_inner()
}

/// Every regular file below `dir` (symlinks are not followed), with its length.
fn files_below(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                out.push((e.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// Pre-warms every file below `dir`; `progress` is updated about once a second.
pub fn prewarm_dir(
    dir: &Path,
    p: Prewarm,
    progress: &Mutex<Option<PrewarmProgress>>,
) -> PrewarmProgress {
    let files = files_below(dir);
    let mut sources: Vec<Box<dyn ReadAt>> = Vec::new();
    let mut open_errors = 0;
    for (path, _) in &files {
        match std::fs::File::open(path) {
            Ok(f) => sources.push(Box::new(f)),
            Err(_) => open_errors += 1,
        }
    }
    let total: u64 = sources.iter().map(|s| s.len()).sum();
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let snapshot = |finished: bool, errors: u64| {
        let bytes = done.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let rate = bytes as f64 / secs;
        PrewarmProgress {
            path: dir.to_path_buf(),
            files: files.len() as u64,
            bytes_total: total,
            bytes_done: bytes,
            mb_per_sec: rate / 1e6,
            eta_secs: (rate > 0.0).then(|| total.saturating_sub(bytes) as f64 / rate),
            done: finished,
            errors,
        }
    };
    let errors = std::thread::scope(|scope| {
        let worker = scope.spawn(|| prewarm_source(&sources, p, &done));
        while !worker.is_finished() {
            *progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot(false, 0));
            std::thread::sleep(Duration::from_millis(500));
        }
        worker.join().unwrap_or(1)
    });
    let last = snapshot(true, errors + open_errors);
    *progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(last.clone());
    last
}

/// The agent's pre-warm task: the data dir, once, at start.
/// Written in the data dir once a pre-warm read everything without error. The stack's user data deletes it
/// when it makes a volume from a snapshot, so each restored volume is read once, not at every agent start.
pub(crate) const MARKER: &str = ".ethnode-prewarmed";

pub(crate) async fn run(shared: Arc<Shared>) {
    let dir = shared.config.node.data_dir.clone();
    let marker = dir.join(MARKER);
    if marker.exists() {
        tracing::info!(marker = %marker.display(), "chain data already pre-warmed; not reading it again");
        return;
    }
    let p = Prewarm {
        parallelism: shared.config.snapshot.prewarm_parallelism,
        block: shared.config.snapshot.prewarm_block_kib * 1024,
    };
    tracing::info!(dir = %dir.display(), parallelism = p.parallelism, block_kib = p.block / 1024, "pre-warming chain data");
    let sh = shared.clone();
    let result = tokio::task::spawn_blocking(move || prewarm_dir(&dir, p, &sh.prewarm)).await;
    match result {
        Ok(r) => {
            tracing::info!(
                bytes = r.bytes_done,
                files = r.files,
                mb_per_sec = format!("{:.1}", r.mb_per_sec),
                errors = r.errors,
                "pre-warm done"
            );
            if r.errors == 0
                && let Err(e) = std::fs::write(&marker, b"")
            {
                tracing::warn!(error = %e, "could not write the pre-warm marker; the next start reads again");
            }
        }
        Err(e) => tracing::error!(error = %e, "pre-warm task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    /// A real file whose reads are counted per offset, with the most reads ever in flight.
    struct Counting {
        file: std::fs::File,
        reads: Mutex<HashMap<u64, usize>>,
        in_flight: AtomicU64,
        max_in_flight: AtomicU64,
    }

    impl ReadAt for Arc<Counting> {
        fn len(&self) -> u64 {
            self.file.len()
        }

        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            *self.reads.lock().unwrap().entry(offset).or_default() += 1;
            // Long enough that the workers overlap.
            std::thread::sleep(Duration::from_micros(200));
            let r = self.file.read_at(buf, offset);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        }
    }

    #[test]
    fn reads_every_block_exactly_once_with_bounded_reads_in_flight() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let block = 4096;
        // 1000 full blocks and a partial one.
        let len = 1000 * block + 123;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let counting = Arc::new(Counting {
            file: f.reopen().unwrap(),
            reads: Mutex::new(HashMap::new()),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        });
        let sources: Vec<Box<dyn ReadAt>> = vec![Box::new(counting.clone())];
        let done = AtomicU64::new(0);
        let errors = prewarm_source(
            &sources,
            Prewarm {
                parallelism: 4,
                block,
            },
            &done,
        );
        assert_eq!(errors, 0);
        assert_eq!(done.load(Ordering::SeqCst), len as u64);
        let reads = counting.reads.lock().unwrap();
        assert_eq!(reads.len(), 1001, "one read per block");
        for i in 0..1001u64 {
            assert_eq!(reads.get(&(i * block as u64)), Some(&1), "block {i}");
        }
        let max = counting.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 4, "{max} reads in flight with parallelism 4");
        assert!(max >= 2, "the workers never overlapped ({max})");
    }

    #[test]
    fn prewarms_every_file_below_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("reth/db")).unwrap();
        std::fs::write(dir.path().join("reth/db/mdbx.dat"), vec![1u8; 300_000]).unwrap();
        std::fs::write(dir.path().join("jwt.hex"), "ab").unwrap();
        std::fs::write(dir.path().join("empty"), "").unwrap();
        let progress = Mutex::new(None);
        let r = prewarm_dir(
            dir.path(),
            Prewarm {
                parallelism: 3,
                block: 65536,
            },
            &progress,
        );
        assert_eq!(r.files, 3);
        assert_eq!(r.bytes_total, 300_002);
        assert_eq!(r.bytes_done, 300_002);
        assert!(r.done && r.errors == 0);
        assert_eq!(
            progress.lock().unwrap().as_ref().unwrap().bytes_done,
            300_002
        );
    }
}
