//! The report outbox: every timeline event (installed, booted, healthy, rolled back,
//! failed...) is written to `state_dir/outbox/` with its own event number before it is sent,
//! and stays there until the server acknowledges it. Each cycle sends what is pending,
//! oldest first, so an event survives a network cut, a crash or a power loss. A retry is
//! signed again with a fresh message counter (never a replay); the server stores each event
//! number once and answers a repeat as already accepted, so nothing arrives twice.

use std::path::{Path, PathBuf};

use otter_keys::wire::Event;
use serde::{Deserialize, Serialize};

use crate::agent::Agent;
use crate::http::HttpError;
use crate::messages::MessageError;
use crate::state_dir::{StateDir, StateDirError, write_atomic};

/// Events kept while the server is unreachable; past this the oldest are dropped.
pub const MAX_PENDING: usize = 256;

/// One pending event, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The event's number (the report's `event_seq`).
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// The outbox directory of a state dir.
#[derive(Clone, Debug)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox of `state`.
    pub fn new(state: &StateDir) -> Self {
        Self {
            dir: state.root().join("outbox"),
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateDirError + '_ {
        move |source| StateDirError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Persists `event` under the next event number (itself persisted first, so a number is
    /// never given twice) and returns that number.
    pub fn push(&self, event: &Event) -> Result<u64, StateDirError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let seq_path = self.dir.join("last-seq");
        let last = match std::fs::read_to_string(&seq_path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| StateDirError::Corrupt {
                    path: seq_path.clone(),
                    why: format!("not an event number: {e}"),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(StateDirError::Io {
                    path: seq_path,
                    source,
                });
            }
        };
        let seq = last.saturating_add(1);
        write_atomic(&seq_path, seq.to_string().as_bytes())?;
        let pending = Pending {
            seq,
            event: event.clone(),
        };
        let bytes = serde_json::to_vec(&pending).map_err(|e| StateDirError::Corrupt {
            path: self.dir.clone(),
            why: e.to_string(),
        })?;
        write_atomic(&self.entry_path(seq), &bytes)?;
        self.trim()?;
        Ok(seq)
    }

    fn entry_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    fn entries(&self) -> Result<Vec<PathBuf>, StateDirError> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateDirError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    fn trim(&self) -> Result<(), StateDirError> {
        let entries = self.entries()?;
        let excess = entries.len().saturating_sub(MAX_PENDING);
        for path in entries.iter().take(excess) {
            tracing::warn!(path = %path.display(), "outbox full: dropping the oldest event");
            std::fs::remove_file(path).map_err(Self::io(path))?;
        }
        Ok(())
    }

    /// Pending events, oldest first (an unreadable entry is dropped with a warning).
    pub fn pending(&self) -> Result<Vec<Pending>, StateDirError> {
        let mut out = Vec::new();
        for path in self.entries()? {
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Pending>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(p) => out.push(p),
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "dropping an unreadable outbox entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(out)
    }

    /// Forgets event `seq` (the server has it).
    pub fn remove(&self, seq: u64) -> Result<(), StateDirError> {
        let path = self.entry_path(seq);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateDirError::Io { path, source }),
        }
    }
}

/// Whether a failed send should stay in the outbox for the next try.
fn worth_retrying(e: &MessageError) -> bool {
    match e {
        // A counter race or rate limit passes; a fresh counter is signed next time.
        MessageError::Http(HttpError::Status { status, .. })
            if *status == reqwest::StatusCode::CONFLICT
                || *status == reqwest::StatusCode::TOO_MANY_REQUESTS =>
        {
            true
        }
        e => e.is_transient(),
    }
}

impl Agent {
    /// The device's outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(&self.state)
    }

    /// Records `event` in the outbox, then sends everything pending. Never fails: an event
    /// that cannot be sent now goes out with a later cycle.
    pub(crate) async fn report(&self, event: Event) {
        if let Err(e) = self.outbox().push(&event) {
            tracing::error!(error = %e, "could not record a report in the outbox");
        }
        self.flush_outbox().await;
    }

    /// Sends pending events oldest first, each until the server acknowledges it; stops at
    /// the first that fails for a passing reason. Returns how many were delivered.
    pub async fn flush_outbox(&self) -> usize {
        let outbox = self.outbox();
        let pending = match outbox.pending() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "could not read the outbox");
                return 0;
            }
        };
        let mut sent = 0;
        for Pending { seq, event } in pending {
            match self.messenger().report(seq, event).await {
                Ok(()) => sent += 1,
                Err(e) if worth_retrying(&e) => {
                    tracing::warn!(seq, error = %e, "could not send a report; it stays in the outbox");
                    return sent;
                }
                Err(e) => {
                    tracing::error!(seq, error = %e, "the server refused a report; dropping it");
                }
            }
            if let Err(e) = outbox.remove(seq) {
                tracing::error!(seq, error = %e, "could not remove a sent report from the outbox");
                return sent;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(n: u32) -> Event {
        Event::Failed {
            stage: "s".into(),
            reason: n.to_string(),
        }
    }

    #[test]
    fn events_keep_their_numbers_in_order_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let outbox = Outbox::new(&state);
        assert_eq!(outbox.push(&failed(1)).unwrap(), 1);
        assert_eq!(outbox.push(&failed(2)).unwrap(), 2);
        outbox.remove(1).unwrap();
        let again = Outbox::new(&StateDir::open(dir.path()).unwrap());
        assert_eq!(again.push(&failed(3)).unwrap(), 3);
        let seqs: Vec<u64> = again.pending().unwrap().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(&StateDir::open(dir.path()).unwrap());
        for n in 0..(MAX_PENDING as u32 + 3) {
            outbox.push(&failed(n)).unwrap();
        }
        let pending = outbox.pending().unwrap();
        assert_eq!(pending.len(), MAX_PENDING);
        assert_eq!(pending[0].seq, 4);
    }
}
