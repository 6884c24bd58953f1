//! placeholder — filled by the store conformance work
