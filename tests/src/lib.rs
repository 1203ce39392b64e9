//! workspace-level tests
