//! Rebuilds when a migration file is added or changed: `sqlx::migrate!`
//! embeds every file of `migrations/sqlite` and `migrations/postgres`.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
