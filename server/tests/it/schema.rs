//! Two migration trees, one schema. SQLite and Postgres each have their own migrations (the
//! dialects differ), so nothing but this test keeps them describing the same tables. It migrates a
//! fresh database of each kind, reads back what the database itself reports — tables, columns
//! (type, nullability, default), primary keys, foreign keys, unique constraints and indexes — in
//! one backend-neutral form, and fails on any difference, naming it.
//!
//! Types are compared through the one mapping the migrations use: SQLite `TEXT` is Postgres `text`
//! or `jsonb` (lists are JSON text in SQLite), `BLOB` is `bytea`, `INTEGER` is `integer`, `BIGINT`
//! is `bigint`, `REAL` or `DOUBLE PRECISION` is `double precision`; anything else is a difference.

use crate::common::{Backend, TestDb};
use app::infra::db::Db;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    name: String,
    /// The backend-neutral type family (see the module doc).
    family: String,
    not_null: bool,
    /// The default as written, without a Postgres cast (`'[]'::jsonb` → `'[]'`).
    default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    table: String,
    references: Vec<String>,
    on_delete: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    unique: bool,
    /// Column names, with ` DESC` for descending keys.
    columns: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeSet<Column>,
    primary_key: Vec<String>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// Unique constraints (not indexes created by `CREATE INDEX`).
    unique: BTreeSet<Vec<String>>,
    /// Indexes created by `CREATE [UNIQUE] INDEX`, by name.
    indexes: BTreeMap<String, Index>,
}

type Schema = BTreeMap<String, Table>;

/// Tables that are not ours: the migration ledger, and the session store's own table, which the
/// session library creates and names differently per backend.
fn ours(table: &str) -> bool {
    !matches!(table, "_sqlx_migrations" | "tower_sessions" | "session")
        // Each backend's own full-text search machinery: SQLite's FTS5 tables and their shadow
        // tables, Postgres' generated `search` columns and their GIN indexes (skipped below).
        && !table.starts_with("characters_fts")
        && !table.starts_with("chat_messages_fts")
}

/// Postgres' full-text search columns and indexes (on `characters` and `chat_messages`), which
/// SQLite keeps in FTS5.
fn postgres_search(name: &str) -> bool {
    matches!(
        name,
        "search" | "characters_search" | "chat_messages_search"
    )
}

fn family_sqlite(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "TEXT" => "text",
        "BLOB" => "bytes",
        "INTEGER" => "int32",
        "BIGINT" => "int64",
        "REAL" | "DOUBLE PRECISION" => "float64",
        other => return format!("sqlite:{other}"),
    }
    .to_string()
}

fn family_postgres(data_type: &str) -> String {
    match data_type {
        "text" | "jsonb" => "text",
        "bytea" => "bytes",
        "integer" => "int32",
        "bigint" => "int64",
        "double precision" => "float64",
        other => return format!("postgres:{other}"),
    }
    .to_string()
}

/// `'[]'::jsonb` → `'[]'`, `0` → `0`.
fn default_postgres(d: Option<String>) -> Option<String> {
    d.map(|d| match d.split_once("::") {
        Some((v, _)) => v.to_string(),
        None => d,
    })
}

fn on_delete_postgres(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => other,
    }
    .to_string()
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for t in tables.into_iter().filter(|t| ours(t)) {
        let mut table = Table::default();
        let cols = sqlx::query(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1)",
        )
        .bind(&t)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in cols {
            let name: String = c.get("name");
            let pk_pos: i64 = c.get("pk");
            if pk_pos > 0 {
                pk.push((pk_pos, name.clone()));
            }
            table.columns.insert(Column {
                family: family_sqlite(c.get::<String, _>("type").as_str()),
                // SQLite lets a primary-key column be NULL unless declared otherwise; Postgres
                // never does. Both refuse NULL ids in practice (the app always sets them).
                not_null: c.get::<i64, _>("notnull") == 1 || pk_pos > 0,
                default: c.get("dflt_value"),
                name,
            });
        }
        pk.sort();
        table.primary_key = pk.into_iter().map(|(_, n)| n).collect();

        let fks = sqlx::query(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(&t)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for f in fks {
            let fk = by_id.entry(f.get("id")).or_insert_with(|| ForeignKey {
                columns: vec![],
                table: f.get("table"),
                references: vec![],
                on_delete: f.get("on_delete"),
            });
            fk.columns.push(f.get("from"));
            fk.references.push(f.get("to"));
        }
        table.foreign_keys = by_id.into_values().collect();

        let indexes = sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list($1)")
            .bind(&t)
            .fetch_all(pool)
            .await
            .unwrap();
        for i in indexes {
            let name: String = i.get("name");
            let origin: String = i.get("origin");
            let keys = sqlx::query(
                "SELECT name, \"desc\" FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno",
            )
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap();
            let columns: Vec<String> = keys
                .iter()
                .map(|k| {
                    let col: String = k.get("name");
                    if k.get::<i64, _>("desc") == 1 {
                        format!("{col} DESC")
                    } else {
                        col
                    }
                })
                .collect();
            match origin.as_str() {
                "c" => {
                    table.indexes.insert(
                        name,
                        Index {
                            unique: i.get::<i64, _>("unique") == 1,
                            columns,
                        },
                    );
                }
                "u" => {
                    table.unique.insert(columns);
                }
                _ => {} // the primary key's own index
            }
        }
        schema.insert(t, table);
    }
    schema
}

async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for t in tables.into_iter().filter(|t| ours(t)) {
        let mut table = Table::default();
        let cols = sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS data_type, is_nullable::text AS nullable, \
             column_default::text AS dflt FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&t)
        .fetch_all(pool)
        .await
        .unwrap();
        for c in cols {
            if (t == "characters" || t == "chat_messages")
                && postgres_search(c.get::<String, _>("name").as_str())
            {
                continue;
            }
            table.columns.insert(Column {
                name: c.get("name"),
                family: family_postgres(c.get::<String, _>("data_type").as_str()),
                not_null: c.get::<String, _>("nullable") == "NO",
                default: default_postgres(c.get("dflt")),
            });
        }

        // Constraints, with their columns in key order.
        let constraints = sqlx::query(
            "SELECT con.contype::text AS kind, con.confdeltype::text AS on_delete, \
                    ref.relname::text AS ref_table, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS ref_cols \
             FROM pg_constraint con \
             JOIN pg_class rel ON rel.oid = con.conrelid \
             JOIN pg_namespace ns ON ns.oid = rel.relnamespace \
             LEFT JOIN pg_class ref ON ref.oid = con.confrelid \
             WHERE ns.nspname = 'public' AND rel.relname = $1 AND con.contype IN ('p', 'f', 'u')",
        )
        .bind(&t)
        .fetch_all(pool)
        .await
        .unwrap();
        for c in constraints {
            let cols: Vec<String> = c.get("cols");
            match c.get::<String, _>("kind").as_str() {
                "p" => table.primary_key = cols,
                "u" => {
                    table.unique.insert(cols);
                }
                _ => {
                    table.foreign_keys.insert(ForeignKey {
                        columns: cols,
                        table: c.get("ref_table"),
                        references: c.get("ref_cols"),
                        on_delete: on_delete_postgres(&c.get::<String, _>("on_delete")),
                    });
                }
            }
        }

        // Indexes that do not back a constraint, i.e. those made by CREATE INDEX.
        let indexes = sqlx::query(
            "SELECT ic.relname::text AS name, ix.indisunique AS is_unique, \
                    ARRAY(SELECT a.attname::text || CASE WHEN (ix.indoption[k.i - 1] & 1) = 1 THEN ' DESC' ELSE '' END \
                          FROM unnest(ix.indkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.n ORDER BY k.i) AS cols \
             FROM pg_index ix \
             JOIN pg_class ic ON ic.oid = ix.indexrelid \
             JOIN pg_class rel ON rel.oid = ix.indrelid \
             JOIN pg_namespace ns ON ns.oid = rel.relnamespace \
             WHERE ns.nspname = 'public' AND rel.relname = $1 \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ix.indexrelid)",
        )
        .bind(&t)
        .fetch_all(pool)
        .await
        .unwrap();
        for i in indexes {
            if postgres_search(i.get::<String, _>("name").as_str()) {
                continue;
            }
            table.indexes.insert(
                i.get("name"),
                Index {
                    unique: i.get("is_unique"),
                    columns: i.get("cols"),
                },
            );
        }
        schema.insert(t, table);
    }
    schema
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for name in names {
        let (Some(s), Some(p)) = (sqlite.get(name), postgres.get(name)) else {
            let only = if sqlite.contains_key(name) {
                "SQLite"
            } else {
                "Postgres"
            };
            out.push(format!("table {name}: only in {only}"));
            continue;
        };
        for c in s.columns.symmetric_difference(&p.columns) {
            let side = if s.columns.contains(c) {
                "SQLite"
            } else {
                "Postgres"
            };
            out.push(format!("{name}: column as {side} has it: {c:?}"));
        }
        if s.primary_key != p.primary_key {
            out.push(format!(
                "{name}: primary key SQLite {:?} vs Postgres {:?}",
                s.primary_key, p.primary_key
            ));
        }
        for f in s.foreign_keys.symmetric_difference(&p.foreign_keys) {
            let side = if s.foreign_keys.contains(f) {
                "SQLite"
            } else {
                "Postgres"
            };
            out.push(format!("{name}: foreign key only in {side}: {f:?}"));
        }
        for u in s.unique.symmetric_difference(&p.unique) {
            let side = if s.unique.contains(u) {
                "SQLite"
            } else {
                "Postgres"
            };
            out.push(format!("{name}: unique constraint only in {side}: {u:?}"));
        }
        let index_names: BTreeSet<&String> = s.indexes.keys().chain(p.indexes.keys()).collect();
        for i in index_names {
            let (a, b) = (s.indexes.get(i), p.indexes.get(i));
            if a != b {
                out.push(format!("{name}: index {i}: SQLite {a:?} vs Postgres {b:?}"));
            }
        }
    }
    out
}

async fn migrated(backend: Backend) -> (Db, TestDb) {
    let t = TestDb::new(backend).await;
    let db = Db::connect(&t.url).await.expect("connect and migrate");
    (db, t)
}

async fn both_schemas() -> (Schema, Schema) {
    let (sqlite, _s) = migrated(Backend::Sqlite).await;
    let (postgres, _p) = migrated(Backend::Postgres).await;
    let Db::Sqlite(s) = &sqlite else {
        unreachable!()
    };
    let Db::Postgres(p) = &postgres else {
        unreachable!()
    };
    (sqlite_schema(s).await, postgres_schema(p).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migration_trees_describe_the_same_schema() {
    let (sqlite, postgres) = both_schemas().await;
    // The reader must see the schema at all, or an empty-vs-empty comparison would pass.
    for table in [
        "users",
        "oauth_identities",
        "characters",
        "chat_messages",
        "generations",
    ] {
        let t = sqlite
            .get(table)
            .unwrap_or_else(|| panic!("SQLite has no {table}"));
        assert!(
            !t.columns.is_empty() && !t.primary_key.is_empty(),
            "{table}: {t:?}"
        );
    }
    assert!(
        sqlite.values().any(|t| !t.foreign_keys.is_empty())
            && sqlite.values().any(|t| !t.indexes.is_empty())
            && sqlite.values().any(|t| !t.unique.is_empty()),
        "the SQLite reader found no foreign keys, indexes or unique constraints"
    );
    let diff = differences(&sqlite, &postgres);
    assert!(
        diff.is_empty(),
        "the SQLite and Postgres migrations have drifted apart:\n  {}",
        diff.join("\n  ")
    );
}

/// The comparison itself finds drift: each kind of difference a migration could introduce on one
/// side only is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_of_every_kind_is_reported() {
    let (sqlite, postgres) = both_schemas().await;
    assert!(differences(&sqlite, &postgres).is_empty());

    type Mutation = Box<dyn Fn(&mut Schema)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "only in",
            Box::new(|s: &mut Schema| {
                s.remove("generations");
            }),
        ),
        (
            "column",
            Box::new(|s: &mut Schema| {
                let t = s.get_mut("characters").unwrap();
                let mut c = t.columns.iter().find(|c| c.name == "age").unwrap().clone();
                t.columns.remove(&c);
                c.family = "int64".into();
                t.columns.insert(c);
            }),
        ),
        (
            "column",
            Box::new(|s: &mut Schema| {
                let t = s.get_mut("users").unwrap();
                let mut c = t
                    .columns
                    .iter()
                    .find(|c| c.name == "email")
                    .unwrap()
                    .clone();
                t.columns.remove(&c);
                c.not_null = true;
                t.columns.insert(c);
            }),
        ),
        (
            "primary key",
            Box::new(|s: &mut Schema| {
                s.get_mut("oauth_identities").unwrap().primary_key.reverse();
            }),
        ),
        (
            "foreign key",
            Box::new(|s: &mut Schema| {
                s.get_mut("characters").unwrap().foreign_keys.clear();
            }),
        ),
        (
            "unique constraint",
            Box::new(|s: &mut Schema| {
                s.get_mut("twins").unwrap().unique.clear();
            }),
        ),
        (
            "index",
            Box::new(|s: &mut Schema| {
                let t = s.get_mut("characters").unwrap();
                let two = t.indexes.values_mut().find(|i| i.columns.len() > 1);
                two.unwrap().columns.reverse();
            }),
        ),
    ];
    for (expect, mutate) in mutations {
        let mut drifted = postgres.clone();
        mutate(&mut drifted);
        let diff = differences(&sqlite, &drifted);
        assert!(
            diff.iter().any(|d| d.contains(expect)),
            "a '{expect}' drift was not reported: {diff:?}"
        );
    }
}
