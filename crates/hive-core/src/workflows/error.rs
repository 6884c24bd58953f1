crate::kernel::refusal::domain_error!(
    /// Why a workflows call was refused (not found: no such workflow or run, or one the caller
    /// may not see). Messages are safe to show to the caller.
    WorkflowError,
    "workflows"
);
