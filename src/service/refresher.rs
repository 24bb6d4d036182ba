//! The background refresher: keys in use and due for refresh ahead of
//! expiry are queued, and one task per instance re-reads them in batches
//! (one [`KeyStore::get_keys_for_verify`](crate::store::KeyStore::get_keys_for_verify)
//! call per batch, each distinct account at most once), instead of one
//! task and one store read per key.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Inner, Keyward};
use crate::cache::CachedAccount;
use crate::id::{AccountId, KeyId};

/// The default batch window for propagation window `window`: W/100, at
/// most 250 ms.
pub(crate) fn default_batch_window(window: Duration) -> Duration {
    (window / 100).min(Duration::from_millis(250))
}

/// The queue of keys due for refresh, shared by the instance and its
/// refresher task (which holds the instance only weakly).
#[derive(Debug, Default)]
struct Queue {
    ids: Mutex<Vec<KeyId>>,
    wake: Notify,
    /// Whether a refresher task is alive (it clears this when it ends,
    /// also when its runtime drops it: the next refresh starts another).
    running: AtomicBool,
    /// The instance is gone: the task ends.
    closed: AtomicBool,
}

impl Queue {
    fn take(&self) -> Vec<KeyId> {
        std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The instance's side of the refresher.
#[derive(Debug)]
pub(crate) struct Refresher {
    queue: Arc<Queue>,
    /// How long the task gathers more keys after the first one queued.
    batch_window: Duration,
}

impl Refresher {
    pub(crate) fn new(batch_window: Duration) -> Self {
        Self {
            queue: Arc::default(),
            batch_window,
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::SeqCst);
        self.queue.wake.notify_one();
    }
}

/// Clears `running` when the task ends, however it ends.
struct Running(Arc<Queue>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

/// Ends the background refresh of every id of a batch, however the batch
/// ends (read, failed, or dropped with its runtime).
struct Claimed<'a> {
    kw: &'a Keyward,
    ids: Vec<KeyId>,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            self.kw.inner.keys.end_refresh(id);
        }
    }
}

impl Keyward {
    /// Queues `id`, claimed with `begin_refresh`, for the refresher task,
    /// starting the task on `runtime` if none is running.
    pub(crate) fn queue_refresh(&self, runtime: &tokio::runtime::Handle, id: KeyId) {
        let r = &self.inner.refresher;
        r.queue
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        if !r.queue.running.swap(true, Ordering::SeqCst) {
            runtime.spawn(run(
                Arc::clone(&r.queue),
                Arc::downgrade(&self.inner),
                r.batch_window,
            ));
        }
        r.queue.wake.notify_one();
    }

    /// Re-reads the keys of one batch: one `get_keys_for_verify` call,
    /// each distinct account at most once (unless read within W/40: the
    /// new entry's freshness is the older of the two reads, and must be
    /// about now for its next refresh to come one period later, see
    /// `decide::refresh_due`), every read key put in the
    /// cache as read at the batch's start; ids the store no longer has are
    /// marked missing. Every id's refresh ends here, also on failure (the
    /// entries then expire at W).
    async fn refresh_batch(&self, ids: Vec<KeyId>) {
        let claimed = Claimed { kw: self, ids };
        let start = self.read_start();
        let loaded = match self.inner.store.get_keys_for_verify(&claimed.ids).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::debug!(target: "keyward::verify", keys = claimed.ids.len(), error = %e, "refresh ahead failed; the entries expire at W");
                return;
            }
        };
        // Each distinct account once; `None` for a failed read, whose keys
        // are left as they are.
        let mut accounts: HashMap<AccountId, Option<Option<CachedAccount>>> = HashMap::new();
        for k in &loaded {
            let account_id = k.stored.key.account_id;
            let account = match accounts.entry(account_id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let read = self
                        .cached_account(&account_id, self.inner.window_nanos / 40)
                        .await
                        .inspect_err(|e| {
                            tracing::debug!(target: "keyward::verify", account_id = %account_id, error = %e, "refresh ahead failed; the entries expire at W");
                        })
                        .ok();
                    e.insert(read)
                }
            };
            if let Some(account) = account {
                self.put_loaded(k, account.as_ref(), start);
            }
        }
        if loaded.len() < claimed.ids.len() {
            let read: std::collections::HashSet<KeyId> =
                loaded.iter().map(|k| k.stored.key.id).collect();
            for id in claimed.ids.iter().filter(|id| !read.contains(id)) {
                self.inner.keys.mark_missing(id, start.at);
            }
        }
    }
}

/// The refresher task: waits for queued keys, gathers more for the batch
/// window, re-reads them all in one batch. Holds the instance weakly
/// (only during a batch strongly), and ends when it is dropped.
async fn run(queue: Arc<Queue>, inner: Weak<Inner>, batch_window: Duration) {
    let _running = Running(Arc::clone(&queue));
    loop {
        queue.wake.notified().await;
        if queue.closed.load(Ordering::SeqCst) {
            return;
        }
        if !batch_window.is_zero() {
            tokio::time::sleep(batch_window).await;
        }
        let ids = queue.take();
        if ids.is_empty() {
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        Keyward { inner }.refresh_batch(ids).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::id::KeyId;
    use crate::{Keyward, MemoryStore};

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// A queued id is read (here: found absent), its refresh ends (it can
    /// be claimed again), and the task does not keep the instance alive.
    #[tokio::test]
    async fn a_batch_ends_its_refreshes_and_the_task_holds_the_instance_weakly() {
        let kw = Keyward::builder()
            .store(MemoryStore::new())
            .refresh_batch_window(std::time::Duration::ZERO)
            .flush_interval(None)
            .build()
            .expect("build");
        let id = KeyId::new("kw_absent").expect("id");
        let runtime = tokio::runtime::Handle::current();
        assert!(kw.inner.keys.begin_refresh(&id));
        kw.queue_refresh(&runtime, id);
        assert!(!kw.inner.keys.begin_refresh(&id), "claimed while queued");
        settle().await;
        assert!(kw.inner.keys.begin_refresh(&id), "the batch ended it");
        kw.inner.keys.end_refresh(&id);
        let queue = Arc::clone(&kw.inner.refresher.queue);
        assert!(queue.running.load(std::sync::atomic::Ordering::SeqCst));
        let weak = Arc::downgrade(&kw.inner);
        drop(kw);
        settle().await;
        assert!(weak.upgrade().is_none(), "the task kept the instance");
        assert!(
            !queue.running.load(std::sync::atomic::Ordering::SeqCst),
            "the task outlived the instance"
        );
    }
}
