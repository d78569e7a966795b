//! The backend request: what a forward sends and how its answer comes back (issue 13).

pub mod orchestrate;
pub mod policy;
pub mod shape;
pub mod sign;
