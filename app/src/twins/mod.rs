//! The digital twin: one per user, the self they bring into the product, described by its Shades
//! (facets of personality, each with a confidence and the topics it came from). Today Shades
//! arrive from SecondMe at sign-in ([`service`]); there are no server functions yet.

#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;
