//! The command line: every subcommand and its options.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// keyward's ops tool: migrate a store, bootstrap or recover the admin
/// key, and manage accounts and keys, as the application itself
/// (`Actor::System`).
///
/// Exit codes: 0 success; 1 internal or store backend error; 2 bad usage or
/// invalid input; 3 not found; 4 conflict (already exists, changed
/// concurrently, protected key); 5 store unavailable.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Store URL: sqlite://path/file.db, postgres://… (feature `postgres`)
    /// or memory:.
    #[arg(
        long,
        global = true,
        env = "KEYWARD_DATABASE_URL",
        default_value = "sqlite://keyward.db",
        hide_env_values = true
    )]
    pub(crate) database_url: String,
    /// Credential prefix of the deployment (as KeywardBuilder::prefix).
    #[arg(long, global = true, env = "KEYWARD_PREFIX")]
    pub(crate) prefix: Option<String>,
    /// Prefix of the old key strings of imported keys (as
    /// `LegacyKeys` in the application; `keys import` needs it).
    #[arg(long, global = true, env = "KEYWARD_LEGACY_PREFIX")]
    pub(crate) legacy_prefix: Option<String>,
    /// Old key strings are found by their first N characters (a public
    /// id); without it, by their SHA-256 (as `LegacyKeys::leading` /
    /// `LegacyKeys::sha256`).
    #[arg(
        long,
        global = true,
        env = "KEYWARD_LEGACY_ID_LEN",
        requires = "legacy_prefix"
    )]
    pub(crate) legacy_id_len: Option<usize>,
    /// Print JSON (one document on stdout) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 internal or backend error, \
2 bad usage or invalid input, 3 not found, 4 conflict, 5 store unavailable.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply keyward's migrations and create the admin account and key
    /// (the secret is shown once). Does nothing more when the account
    /// already has a key.
    Init(InitArgs),
    /// Apply keyward's pending migrations only.
    Migrate,
    /// Accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Applications (groups of keys switched on and off together).
    #[command(subcommand)]
    Apps(AppsCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// An account's audit events, newest first.
    Events(EventsArgs),
    /// An account's usage counts per key, origin, category and hour.
    Usage(UsageArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Id of the admin account.
    #[arg(long, default_value = "admin")]
    pub(crate) account: String,
    /// Permissions of the admin account and key (comma-separated or
    /// repeated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "readApiKeys,writeApiKeys,readAccounts,writeAccounts,readApplications,writeApplications"
    )]
    pub(crate) permissions: Vec<String>,
}

/// `accounts …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCommand {
    /// Create an account.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Permissions its keys may hold (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
        /// Its id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Parent account, which may act for it.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Show an account.
    Show {
        /// Account id.
        id: String,
    },
    /// List the child accounts of an account.
    List(ListAccountsArgs),
    /// Change an account's name, permissions or status (deactivating it
    /// switches off every key of it, everywhere within W).
    Update {
        /// Account id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New permissions (replace the old ones; narrowing them narrows
        /// every key of the account).
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        /// New status.
        #[arg(long, value_enum)]
        status: Option<Status>,
    },
}

/// `accounts list`.
#[derive(Debug, Args)]
pub(crate) struct ListAccountsArgs {
    /// The parent account.
    #[arg(long)]
    pub(crate) parent: String,
    /// Only accounts whose name contains this (case-insensitive).
    #[arg(long)]
    pub(crate) q: Option<String>,
    /// Only accounts with this status.
    #[arg(long, value_enum)]
    pub(crate) status: Option<Status>,
    /// Page size (1-100).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Continue after this cursor (printed by the previous page).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

/// `apps …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AppsCommand {
    /// List an account's applications.
    List {
        /// The account.
        #[arg(long)]
        account: String,
        /// Only applications whose title contains this (case-insensitive).
        #[arg(long)]
        q: Option<String>,
        /// Only applications with this status.
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Page size (1-100).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after this cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Create an application.
    Create {
        /// The account.
        #[arg(long)]
        account: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show an application.
    Show {
        /// Application id.
        id: String,
    },
    /// Change an application's title or description.
    Update {
        /// Application id.
        id: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Activate an application (its active keys work again).
    Activate {
        /// Application id.
        id: String,
    },
    /// Deactivate an application (none of its keys works, everywhere
    /// within W).
    Deactivate {
        /// Application id.
        id: String,
    },
    /// Delete an application (refused while it has keys, unless
    /// `--cascade` deletes them too).
    Delete {
        /// Application id.
        id: String,
        /// Also delete its keys.
        #[arg(long)]
        cascade: bool,
    },
}

/// `keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Issue a key (the secret is shown once).
    Create(CreateKey),
    /// List an account's keys.
    List(ListArgs),
    /// Show a key.
    Show {
        /// Key id.
        id: String,
    },
    /// Change a key's fields.
    Update(UpdateKey),
    /// Issue a new secret (shown once); the old one works for the grace
    /// period.
    Rotate {
        /// Key id.
        id: String,
        /// Seconds the previous secret keeps working (default 0).
        #[arg(long)]
        grace_seconds: Option<i64>,
    },
    /// Activate keys.
    Activate {
        /// Key ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Deactivate keys (effective everywhere within W).
    Deactivate {
        /// Key ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Import keys from another system from a CSV file, all or nothing
    /// (bad rows are reported by line; importing a file again changes
    /// nothing). Columns (header row): external_id, account, name, and
    /// secret or hash; optional: alias, permissions (separated by spaces or
    /// `;`), description, application, expires_at (RFC 3339), cidrs
    /// (spaces or `;`), metadata (a JSON object). Needs --legacy-prefix.
    Import(ImportArgs),
    /// Delete keys (a protected key only with `--force`).
    Delete {
        /// Key ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Also delete protected keys (the application's own system keys).
        #[arg(long)]
        force: bool,
    },
}

/// `keys import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The CSV file (`-` for standard input).
    #[arg(long)]
    pub(crate) file: std::path::PathBuf,
}

/// `keys create`.
#[derive(Debug, Args)]
pub(crate) struct CreateKey {
    /// The key's account.
    #[arg(long)]
    pub(crate) account: String,
    /// Display name.
    #[arg(long)]
    pub(crate) name: String,
    /// Permissions (comma-separated or repeated; a subset of the account's).
    #[arg(long, value_delimiter = ',')]
    pub(crate) permissions: Vec<String>,
    /// Description.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Application label.
    #[arg(long)]
    pub(crate) application: Option<String>,
    /// Expiry (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long)]
    pub(crate) expires_at: Option<String>,
    /// Allowed client networks (CIDR; comma-separated or repeated).
    #[arg(long = "cidr", value_delimiter = ',')]
    pub(crate) cidrs: Vec<String>,
    /// Allowed browser origins (`https://app.example.com` or
    /// `https://*.example.com`; comma-separated or repeated).
    #[arg(long = "origin", value_delimiter = ',')]
    pub(crate) origins: Vec<String>,
    /// Metadata (a JSON object).
    #[arg(long)]
    pub(crate) metadata: Option<String>,
    /// Protect the key from deletion.
    #[arg(long)]
    pub(crate) protected: bool,
}

/// `keys list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The account.
    #[arg(long)]
    pub(crate) account: String,
    /// Only keys whose name contains this (case-insensitive).
    #[arg(long)]
    pub(crate) q: Option<String>,
    /// Only keys with this status.
    #[arg(long, value_enum)]
    pub(crate) status: Option<Status>,
    /// Only keys with this application label.
    #[arg(long)]
    pub(crate) application: Option<String>,
    /// Page size (1-100).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Continue after this cursor (printed by the previous page).
    #[arg(long, conflicts_with = "all")]
    pub(crate) cursor: Option<String>,
    /// Every page.
    #[arg(long)]
    pub(crate) all: bool,
}

/// `--status`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Status {
    /// Active keys.
    Active,
    /// Inactive keys.
    Inactive,
}

/// `keys update`.
#[derive(Debug, Args)]
pub(crate) struct UpdateKey {
    /// Key id.
    pub(crate) id: String,
    /// New name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// New description.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// New application label.
    #[arg(long, conflicts_with = "clear_application")]
    pub(crate) application: Option<String>,
    /// Remove the application label.
    #[arg(long)]
    pub(crate) clear_application: bool,
    /// New permissions (replace the old ones).
    #[arg(long, value_delimiter = ',')]
    pub(crate) permissions: Option<Vec<String>>,
    /// New expiry (RFC 3339).
    #[arg(long, conflicts_with = "no_expiry")]
    pub(crate) expires_at: Option<String>,
    /// Remove the expiry.
    #[arg(long)]
    pub(crate) no_expiry: bool,
    /// New allowed networks (replace the old ones; `--cidr ''` for any).
    #[arg(long = "cidr", value_delimiter = ',')]
    pub(crate) cidrs: Option<Vec<String>>,
    /// New allowed browser origins (replace the old ones; `--origin ''`
    /// for any).
    #[arg(long = "origin", value_delimiter = ',')]
    pub(crate) origins: Option<Vec<String>>,
    /// New metadata (a JSON object).
    #[arg(long)]
    pub(crate) metadata: Option<String>,
}

/// `events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The account.
    #[arg(long)]
    pub(crate) account: String,
    /// Only this key's events.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Page size (1-100).
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// Continue after this cursor.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

/// `usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// The account.
    #[arg(long)]
    pub(crate) account: String,
    /// Only this key.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Only this origin label.
    #[arg(long)]
    pub(crate) origin: Option<String>,
    /// From (RFC 3339; default 24 hours ago).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// To (RFC 3339; default now).
    #[arg(long)]
    pub(crate) to: Option<String>,
}
