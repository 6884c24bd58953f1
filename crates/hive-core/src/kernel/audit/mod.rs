//! The audit log: typed events ([`AuditEvent`]: who, what, on what, how it ended), the
//! [`Auditor`] every domain records through, the hash chain that makes the log
//! tamper-evident, and the reading side (filters, views, exports).

mod auditor;
mod chain;
mod event;
mod group_commit;
mod query;

pub use auditor::{Auditor, TransactionRecord, Unrecorded, record_at};
pub use chain::{AuditChain, ChainBreak, Verification, verify};
pub use event::{AuditAction, AuditEvent, Principal};
pub use query::{
    AuditError, AuditExport, AuditLog, EXPORT_BATCH, ExportLines, export_line, parse_filter, view,
};
