//! mediabox persistence
