fn main() {}
mod reference;
