//! The one integration-test binary. Each module is one area of behaviour, tested against a real
//! server on a loopback port with its own fresh database (SQLite file or a new Postgres database);
//! `common` holds the harness. One binary links the app once, instead of once per file.

#[macro_use]
mod common;

mod access;
mod api;
mod branches;
mod cards;
mod chats;
mod context;
mod dbdown;
mod deploy;
mod github;
mod headers;
mod labels;
mod limits;
mod llm_app;
mod matches;
mod oidc;
mod oidc_faults;
mod paging;
mod pictures;
mod play;
mod providers;
mod reliability;
mod replicas;
mod rest;
mod schema;
mod search;
mod secondme;
mod security;
mod store;
mod studio;
mod twins;
mod usage;
