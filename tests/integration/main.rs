fn main() {}

mod local;
