//! The reconciliation's partitions: compact rows appended to files in a
//! directory of its own under the system's temporary directory (Lambda's
//! `/tmp`), removed when dropped.
//!
//! A row goes to partition `hash(key) % PARTITIONS` of its set: the rows that
//! must meet (a Stripe customer, its subscriptions, the customer of ours
//! linked to it) share a key, so they land in the same partition and are read
//! back together, one partition at a time.

use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Partitions per set: one partition holds about 1/64 of the rows.
pub const PARTITIONS: usize = 64;
/// Write buffer per open partition file.
const BUFFER: usize = 8 * 1024;
/// Name of every run's directory, before the run's id.
const PREFIX: &str = "billing-reconcile-";
/// Age past which a run's directory is left over from a run that died (a
/// run lasts at most Lambda's 15 minutes).
const STALE: Duration = Duration::from_secs(6 * 3600);

/// A directory of partition files, removed with everything in it when dropped.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
}

impl Dir {
    /// A new directory named after `run` under the temporary directory. The
    /// directories of runs that died without removing theirs (a Lambda
    /// timeout: a warm sandbox keeps `/tmp`) are removed first once older
    /// than [`STALE`], which no run lasts.
    pub fn create(run: &str) -> std::io::Result<Self> {
        let tmp = std::env::temp_dir();
        remove_stale(&tmp);
        let path = tmp.join(format!("{PREFIX}{run}"));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The writer of the set `name` (its files opened for appending).
    pub fn writer(&self, name: &'static str) -> std::io::Result<Writer> {
        let files = (0..PARTITIONS)
            .map(|p| {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.file(name, p))?;
                Ok(BufWriter::with_capacity(BUFFER, file))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Writer { files, bytes: 0 })
    }

    /// The rows of partition `p` of the set `name`, in the order written.
    pub fn read<T: DeserializeOwned>(
        &self,
        name: &'static str,
        p: usize,
    ) -> std::io::Result<Vec<T>> {
        let path = self.file(name, p);
        if !path.exists() {
            return Ok(Vec::new());
        }
        BufReader::new(File::open(path)?)
            .lines()
            .map(|line| serde_json::from_str(&line?).map_err(std::io::Error::other))
            .collect()
    }

    fn file(&self, name: &str, p: usize) -> PathBuf {
        self.path.join(format!("{name}-{p:03}"))
    }

    /// Where the files are.
    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the partition directories under `tmp` last changed before [`STALE`].
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if stale && entry.file_name().to_string_lossy().starts_with(PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Appends rows to the partitions of one set.
#[derive(Debug)]
pub struct Writer {
    files: Vec<BufWriter<File>>,
    bytes: u64,
}

impl Writer {
    /// Appends `row` to the partition of `key`.
    pub fn put(&mut self, key: &str, row: &impl Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.bytes += line.len() as u64;
        self.files[partition(key)].write_all(&line)
    }

    /// Writes out what is buffered; the bytes written by this writer.
    pub fn finish(mut self) -> std::io::Result<u64> {
        for file in &mut self.files {
            file.flush()?;
        }
        Ok(self.bytes)
    }
}

/// The partition of `key`: the same in every set and run (SipHash, fixed keys).
pub fn partition(key: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % PARTITIONS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_one_key_meet_in_one_partition_and_the_directory_goes() {
        let dir = Dir::create(&format!("test-{}", uuid::Uuid::new_v4().simple())).unwrap();
        let path = dir.path().to_owned();
        let mut a = dir.writer("a").unwrap();
        let mut b = dir.writer("b").unwrap();
        for i in 0..500 {
            a.put(&format!("cus_{i}"), &(format!("cus_{i}"), i))
                .unwrap();
            b.put(&format!("cus_{i}"), &(format!("cus_{i}"), -i))
                .unwrap();
        }
        assert!(a.finish().unwrap() > 0);
        b.finish().unwrap();
        let mut seen = 0;
        for p in 0..PARTITIONS {
            let left: Vec<(String, i64)> = dir.read("a", p).unwrap();
            let right: Vec<(String, i64)> = dir.read("b", p).unwrap();
            assert_eq!(left.len(), right.len());
            for ((k, i), (k2, j)) in left.iter().zip(&right) {
                assert_eq!((k, *i), (k2, -*j));
                assert_eq!(partition(k), p);
            }
            seen += left.len();
        }
        assert_eq!(seen, 500);
        assert!(dir.read::<(String, i64)>("none", 0).unwrap().is_empty());
        drop(dir);
        assert!(!path.exists());
    }
}
