//! The CA simulators.
