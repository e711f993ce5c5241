//! The pages, one module each, and the pieces they share.

pub mod character;
pub mod chat;
pub mod chats;
pub mod dashboard;
pub mod form;
pub mod home;
pub mod import;
pub mod keys;
pub mod layout;
pub mod matches;
pub mod platform;
pub mod play;
pub mod prompt;
pub mod signin;
pub mod trash;
pub mod twin;
pub mod usage;
pub mod wizard;
