fn main() {}
mod properties;
mod reference;
