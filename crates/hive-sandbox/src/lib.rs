//! Isolation backends for agent code and workflow code nodes.
//!
//! The backends arrive with the workflow issue; the crate exists now so that the layering of the
//! workspace is fixed from the start.
