//! The demo schema and its first rows, for `cargo run` with no configuration. The statements
//! work on SQLite and PostgreSQL alike, and leave existing rows alone.

use super::db::{DbError, Pool};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    updated_at TEXT NOT NULL
)";

const SEED: &str = "INSERT INTO products (id, name, price_cents, stock, updated_at) VALUES
    (1, 'Edge node sticker', 300, 120, '2026-11-01 09:00:00'),
    (2, 'Cache-Control mug', 1250, 40, '2026-11-01 09:00:00'),
    (3, 'Stale-while-revalidate hoodie', 4900, 15, '2026-11-01 09:00:00'),
    (4, 'ETag enamel pin', 650, 80, '2026-11-01 09:00:00'),
    (5, 'Varnish-scented candle', 1800, 0, '2026-11-01 09:00:00'),
    (6, 'RFC 9111 poster', 2200, 25, '2026-11-01 09:00:00')
    ON CONFLICT (id) DO NOTHING";

/// Creates the table if missing and inserts the demo rows it lacks.
pub(crate) async fn seed(pool: &Pool) -> Result<(), DbError> {
    pool.execute_script(&[SCHEMA, SEED]).await
}
