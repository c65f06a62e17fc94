//! The I/O edge: listeners, non-blocking sockets and the single-threaded epoll loop that drives
//! [`crate::core::Core`].

pub mod event_loop;
pub mod poller;
