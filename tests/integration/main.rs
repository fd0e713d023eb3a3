mod standard;
mod synth;
fn main() {}
