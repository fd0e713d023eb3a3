mod synth;
fn main() {}
