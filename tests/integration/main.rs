#[cfg(feature = "gui")]
mod teaching;

fn main() {}
