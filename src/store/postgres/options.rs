//! [`PostgresOptions`].

use std::time::Duration;

/// Settings for [`PostgresStore::connect_with`](super::PostgresStore::connect_with).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Pool size (default 10).
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing with
    /// [`StoreError::Unavailable`](crate::store::StoreError::Unavailable)
    /// (default 5 s).
    pub acquire_timeout: Duration,
    /// Schema for keyward's tables (created if missing; default: the
    /// connection's `search_path`, normally `public`). Letters, digits and
    /// `_`, at most 63 characters.
    pub schema: Option<String>,
    /// Whether [`subscribe`](crate::store::KeyStore::subscribe) runs the
    /// change feed (default on).
    pub feed: bool,
    /// How often the feed polls the `revocations` table as a backstop to
    /// LISTEN/NOTIFY (default 1 s).
    pub poll_interval: Duration,
    /// The NOTIFY channel (default `keyward_changes`).
    pub channel: String,
    /// Revocation rows older than this are pruned (default 1 h).
    pub prune_after: Duration,
    /// `application_name` of the store's connections (default `keyward`;
    /// the feed's listener uses `<name>-feed`).
    pub application_name: String,
    /// Whether [`connect_with`](super::PostgresStore::connect_with) creates
    /// the schema and applies keyward's pending migrations (default on).
    /// Off, it only checks that they have been applied (by
    /// [`PostgresStore::migrate`](super::PostgresStore::migrate), the
    /// host's deployment, or another instance).
    pub migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            schema: None,
            feed: true,
            poll_interval: Duration::from_secs(1),
            channel: "keyward_changes".into(),
            prune_after: Duration::from_secs(3600),
            application_name: "keyward".into(),
            migrate: true,
        }
    }
}

impl PostgresOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }
    /// Sets the connection wait limit.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }
    /// Puts the tables in `schema`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
    /// Turns the change feed on or off.
    pub fn feed(mut self, on: bool) -> Self {
        self.feed = on;
        self
    }
    /// Sets the backstop poll interval.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// Sets the NOTIFY channel.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }
    /// Sets how long revocation rows are kept.
    pub fn prune_after(mut self, d: Duration) -> Self {
        self.prune_after = d;
        self
    }
    /// Turns migrating on connect on or off.
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }
    /// Sets the connections' `application_name`.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }
}

/// Whether `s` is a plain SQL identifier safe to quote into statements.
pub(super) fn plain_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::plain_identifier;

    #[test]
    fn identifiers() {
        assert!(plain_identifier("kw_test_01ab"));
        assert!(plain_identifier("keyward_changes"));
        assert!(!plain_identifier(""));
        assert!(!plain_identifier("1abc"));
        assert!(!plain_identifier("a\"b"));
        assert!(!plain_identifier("a b"));
        assert!(!plain_identifier(&"a".repeat(64)));
    }
}
