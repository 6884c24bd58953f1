//! Placeholder: the report is being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource { Default, Environment, File, ConfigFile, Generated }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine { pub name: &'static str, pub value: String, pub source: ValueSource }
