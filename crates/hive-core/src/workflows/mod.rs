//! Durable workflows: a document of nodes and edges, checked when it is saved, and (to come)
//! the engine that runs it, its runs and its triggers.
//!
//! - [`definition`]: the document model and its validation;
//! - [`template`]: `{{ path }}` placeholders in node fields;
//! - [`expression`]: CEL conditions for condition and switch nodes;
//! - [`schedule`]: cron schedules in an IANA time zone;
//! - [`import`]: Pilox graphs to Hive documents.

pub mod definition;
pub mod expression;
pub mod import;
pub mod schedule;
pub mod template;
