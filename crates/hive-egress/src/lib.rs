//! The SSRF-guarded HTTP client. Every outbound request Hive makes (agent cards, remote agents,
//! LLM providers, webhooks, OIDC discovery, federation peers) goes through this crate and no
//! other.
//!
//! The guard arrives with the egress issue; the crate exists now so that the layering of the
//! workspace is fixed from the start.
