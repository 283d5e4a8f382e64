//! Golden-image snapshots of annotation rendering (filled by the annotation work).
