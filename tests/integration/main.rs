mod extensions;

fn main() {}
