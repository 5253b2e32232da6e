//! What every HTTP function shares (feature `http`): who the caller is
//! ([`caller`]), errors as problem+json ([`problem`]), and correlation ids
//! ([`correlation`]). The command API and the query API both use them, so
//! identity and error rules cannot drift apart.

pub mod caller;
pub mod correlation;
pub mod problem;
