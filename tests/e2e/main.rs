//! End-to-end tests: the real server over real HTTP, on SQLite and on PostgreSQL. One
//! module per part of the API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod auth;
mod catalog;
mod concurrency;
mod contract;
mod deletion;
mod durability;
mod events;
mod gallery;
mod media;
mod ops;
mod races;
mod renditions;
mod s3;
mod tus;
mod tus_clients;
mod uploads;
mod validation;
mod video;
