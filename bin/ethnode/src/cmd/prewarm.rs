//! `ethnode prewarm PATH`: read every block of a file, device or directory once, with bounded
//! parallelism, and report the rate: the agent's pre-warm, by hand (and its benchmark).

use super::Globals;
use clap::Args;
use ethnode_agent::{Prewarm, ReadAt, prewarm_dir, prewarm_source};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Debug, Args)]
pub(crate) struct PrewarmArgs {
    /// A file, a block device, or a directory (every file below it).
    path: PathBuf,
    /// Reads in flight.
    #[arg(long, default_value_t = 16)]
    parallelism: usize,
    /// Size of one read, KiB.
    #[arg(long, default_value_t = 1024)]
    block_kib: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl PrewarmArgs {
    pub(crate) fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        g.init_logs("warn");
        anyhow::ensure!(
            (1..=256).contains(&self.parallelism) && (1..=16384).contains(&self.block_kib),
            "--parallelism must be 1..=256 and --block-kib 1..=16384"
        );
        let p = Prewarm {
            parallelism: self.parallelism,
            block: self.block_kib * 1024,
        };
        let start = Instant::now();
        let (bytes, errors) = if self.path.is_dir() {
            let r = prewarm_dir(&self.path, p, &Mutex::new(None));
            (r.bytes_done, r.errors)
        } else {
            let file = std::fs::File::open(&self.path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", self.path.display()))?;
            // A block device reports length 0 in its metadata; seek to the end for its size.
            let len = file.len();
            let source: Box<dyn ReadAt> = if len == 0 {
                Box::new(Device::new(file)?)
            } else {
                Box::new(file)
            };
            let done = AtomicU64::new(0);
            let errors = prewarm_source(&[source], p, &done);
            (done.into_inner(), errors)
        };
        let secs = start.elapsed().as_secs_f64();
        let mbps = bytes as f64 / secs / 1e6;
        if self.json {
            println!(
                "{}",
                serde_json::json!({"path": self.path, "bytes": bytes, "seconds": secs, "mb_per_sec": mbps,
                    "parallelism": self.parallelism, "block_kib": self.block_kib, "errors": errors})
            );
        } else {
            println!(
                "{}: {bytes} bytes in {secs:.2}s = {mbps:.1} MB/s ({} reads in flight, {} KiB each, {errors} errors)",
                self.path.display(),
                self.parallelism,
                self.block_kib
            );
        }
        Ok(if errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// A block device: its size comes from seeking to the end.
struct Device {
    file: std::fs::File,
    len: u64,
}

impl Device {
    fn new(mut file: std::fs::File) -> std::io::Result<Self> {
        use std::io::Seek;
        let len = file.seek(std::io::SeekFrom::End(0))?;
        Ok(Self { file, len })
    }
}

impl ReadAt for Device {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }
}
