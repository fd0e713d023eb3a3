//! The registered combination methods: one line per method.

use super::method::Method;
use super::methods;

/// Every combination method, in the order results are listed and exported. Adding a method:
/// a module implementing [`Method`] and one line here.
pub static METHODS: &[&dyn Method] = &[&methods::ForwardModel, &methods::StandardPractice];
