//! The backend request: what a forward sends and how its answer comes back (issue 13), and
//! which target takes it and what happens when targets fail (issue 14).

pub mod balance;
pub mod breaker;
pub mod health;
pub mod orchestrate;
pub mod policy;
pub mod shape;
pub mod sign;
pub mod state;
