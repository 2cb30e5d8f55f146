//! Creating the original schema when it is missing.
//!
//! The original app server never created its schema (only the original
//! database image did, on an empty data directory), which is why it failed on
//! a stock Postgres. We create, in order and each only if missing:
//! 1. the database (connecting to the `postgres` maintenance database only
//!    when the target database does not exist, so a user without rights
//!    there still works against a prepared database);
//! 2. `restaurants (name char(30) PRIMARY KEY, count integer)`;
//! 3. one row per restaurant at 0;
//! 4. `yelb_vote_keys`, our addition for idempotent votes (the original
//!    never reads it);
//! 5. `count` widened from `integer` to `bigint` where it is still 32-bit
//!    (the original image's table): at 2,147,483,647 votes an `integer`
//!    overflows and fails every batch holding that restaurant, innocent votes
//!    with it. The original app server reads the column as text, so it reads
//!    a `bigint` the same; our reads cast to `bigint`, so they work before
//!    and after. The rewrite of four rows takes milliseconds.
//!
//! Every step tolerates another replica doing the same at the same moment:
//! the table and its seed rows are created in one transaction that first
//! takes a transaction-scoped advisory lock, because concurrent
//! `CREATE TABLE IF NOT EXISTS` statements can still collide in the catalog
//! (seen in CI as `type "restaurants" already exists`).

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use yelb_core::Restaurant;

use crate::{DbError, PgConfig, Result};

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS restaurants (name char(30) PRIMARY KEY, count bigint)";

/// Step 5: a 32-bit counter becomes 64-bit (in place; a no-op once done).
const WIDEN_COUNT: &str = "\
DO $$ BEGIN
  IF (SELECT data_type FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = 'restaurants' AND column_name = 'count') = 'integer'
  THEN ALTER TABLE restaurants ALTER COLUMN count TYPE bigint;
  END IF;
END $$";

/// Serialises schema creation between replicas; released at commit.
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('yelb:schema'))";

const SEED: &str = "INSERT INTO restaurants (name, count) \
     SELECT unnest($1::text[]), 0 ON CONFLICT (name) DO NOTHING";

/// Runs the steps (see the module docs), each attempt bounded by `timeout`.
pub async fn ensure(pg_config: &PgConfig, pool: &Pool, timeout: Duration) -> Result<()> {
    match pool.get().await {
        Ok(client) => create_table_bounded(client, timeout).await,
        Err(deadpool_postgres::PoolError::Backend(e))
            if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) =>
        {
            create_database(pg_config).await?;
            create_table_bounded(pool.get().await?, timeout).await
        }
        Err(e) => Err(e.into()),
    }
}

/// [`create_table`] under `timeout`. A connection that stalls (half-open: a
/// network cut while the app server starts, as when a pod's network is
/// re-plugged) is dropped from the pool, and the caller's retry gets a new
/// one; without this the schema task waited on it for ever and the replica
/// never became ready.
async fn create_table_bounded(mut client: deadpool_postgres::Object, timeout: Duration) -> Result<()> {
    match tokio::time::timeout(timeout, create_table(&mut client)).await {
        Ok(result) => result,
        Err(_) => {
            drop(deadpool_postgres::Object::take(client));
            Err(DbError::Timeout(timeout))
        }
    }
}

async fn create_table(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute(LOCK, &[]).await?;
    tx.execute(CREATE_TABLE, &[]).await?;
    tx.batch_execute(WIDEN_COUNT).await?;
    tx.execute(crate::keyed::CREATE_KEYS, &[]).await?;
    tx.execute(crate::keyed::INDEX_KEYS, &[]).await?;
    let names: Vec<&str> = Restaurant::ALL.iter().map(|r| r.slug()).collect();
    tx.execute(SEED, &[&names]).await?;
    tx.commit().await?;
    Ok(())
}

async fn create_database(pg_config: &PgConfig) -> Result<()> {
    let name = pg_config.get_dbname().unwrap_or("postgres").to_owned();
    // CREATE DATABASE takes no parameters; allow only names that need no
    // quoting beyond the double quotes we add.
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(DbError::Config(format!(
            "database name '{name}' must be letters, digits, '_' or '-' to be created automatically"
        )));
    }
    let mut maintenance = pg_config.clone();
    maintenance.dbname("postgres");
    let (client, connection) = maintenance
        .connect(NoTls)
        .await
        .map_err(|e| DbError::Unavailable(format!("connecting to database 'postgres': {e}")))?;
    let conn_task = tokio::spawn(connection);
    let result = client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await;
    drop(client);
    let _ = conn_task.await;
    match result {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        // Two CREATE DATABASE at once can also collide on the catalog index.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
