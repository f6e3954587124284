//! mediabox storage
