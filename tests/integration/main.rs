#[cfg(feature = "gui")]
mod frametime;
#[cfg(feature = "gui")]
mod teaching;

fn main() {}
