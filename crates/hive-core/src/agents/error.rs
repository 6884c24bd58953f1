//! Why an agents call was refused: the registry, import from a card, and starting, stopping or
//! watching an agent share one error.

crate::kernel::refusal::domain_error!(
    /// Why an agents call was refused (not found: no such agent, or one the caller may not
    /// see). Messages are safe to show to the caller.
    AgentError,
    "agents"
);
