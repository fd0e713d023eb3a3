//! A slow, obviously correct dense implementation of the paper's equations (the test oracle).
