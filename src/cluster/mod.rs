//! Several nodes on one journal: which calls only the leader may serve (`placement`), where the
//! leader is (`route`), and the edge that forwards calls to it (`forward`).

pub mod forward;
pub mod placement;
pub mod route;

pub use forward::{ClientTls, FORWARDED_BY_HEADER, ForwardLayer, MIN_REVISION_HEADER};
pub use placement::{Placement, placement};
pub use route::Route;
