//! mediabox http
