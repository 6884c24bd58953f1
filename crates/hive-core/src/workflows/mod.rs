//! Workflows: documents of nodes and edges, validated and versioned, run durably as their
//! principal.
//!
//! - [`definition`]: the document, its node types and its validation; [`template`] and
//!   [`expression`], what nodes compute with (dotted-path templates, CEL conditions);
//!   [`schedule`], cron in a time zone; [`import`], Pilox's graphs;
//! - [`service`]: saving, reading, starting (by hand, by webhook), cancelling, retrying and
//!   deciding runs, for a caller; [`runs`], the one way a run starts; [`webhook`], the
//!   signature of a webhook call; [`publish`], a workflow published as an agent by its a2a
//!   trigger, and the port through which the gateway runs it;
//! - [`engine`]: each replica's executor, by the journal ([`plan`] reads what comes next,
//!   [`nodes`] does what each node type does, [`principal`] checks who the run acts as before
//!   every step, [`code`] runs code nodes in the sandbox); [`jobs`], schedules fired and old
//!   runs pruned by the leader.

pub mod code;
pub mod definition;
pub mod engine;
pub mod error;
pub mod expression;
pub mod import;
pub mod jobs;
pub mod nodes;
pub mod plan;
pub mod principal;
pub mod publish;
pub mod runs;
pub mod schedule;
pub mod service;
pub mod template;
pub mod webhook;
