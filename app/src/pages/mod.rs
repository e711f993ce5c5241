//! The pages, one module each, and the pieces they share.

pub mod chat;
pub mod dashboard;
pub mod form;
pub mod home;
pub mod layout;
pub mod platform;
pub mod signin;
pub mod wizard;
