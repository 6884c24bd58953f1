//! The mesh: Hive talking to other Hives and to the public. Federation with peer instances
//! (signed tokens, the peer list), the anonymous public tier, the WAN ingress and its NATS
//! carrier, and this replica's presence on the event bus.
//!
//! Above every other domain: no domain imports the mesh; the composition root wires it in.

pub mod federation;
pub(crate) mod presence;
pub mod public_tier;
pub mod wan;
