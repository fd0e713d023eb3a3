//! Result writers: `.npz` and `.csv` (in progress).
