//! Write transactions taken in turn: `BEGIN IMMEDIATE` after this store's
//! writers ahead have finished.
//!
//! SQLite admits one writer at a time. Left to the busy timeout, the
//! connections of one process that wait for the write lock poll it with
//! growing sleeps, in no order: under a steady stream of writes one of them
//! can lose every round until its 5 s run out and an acknowledged request
//! fails with "store unavailable" (seen at about 900,000 keys in the
//! management benchmark's populate step, 8 concurrent writers). Waiting in
//! a FIFO queue first leaves the busy timeout for other processes only.
//! A turn is waited for at most as long as the busy timeout: a writer stuck
//! holding its turn (a task whose runtime stopped polling it) must not
//! block every other writer forever.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::store::StoreResult;
use crate::store::sql::map_err;

/// The longest wait for a turn: the busy timeout's (see
/// [`WriteTurns::begin`]).
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The queue of one store's writers (shared by its clones).
#[derive(Debug, Clone, Default)]
pub(super) struct WriteTurns(Arc<Mutex<()>>);

impl WriteTurns {
    /// Waits for this store's turn to write (at most [`TURN_WAIT`]), then
    /// `BEGIN IMMEDIATE`.
    pub(super) async fn begin(&self, pool: &SqlitePool) -> StoreResult<WriteTx> {
        let turn = match tokio::time::timeout(TURN_WAIT, self.0.clone().lock_owned()).await {
            Ok(turn) => Some(turn),
            Err(_) => {
                // A writer holds its turn this long only when it is stuck
                // (for example a task of a runtime that stopped polling):
                // wait on SQLite's lock and its busy timeout instead, as
                // without turns, rather than forever.
                tracing::warn!(target: "keyward::store", "SQLite write turn not granted within 5 s; waiting for the database lock instead");
                None
            }
        };
        let tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| map_err(e, "begin"))?;
        Ok(WriteTx { tx, _turn: turn })
    }
}

/// A write transaction holding its turn until it commits or is dropped
/// (rolled back).
pub(super) struct WriteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then gives the turn to the next writer.
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}
