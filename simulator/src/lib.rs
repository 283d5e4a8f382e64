//! Panorama-node simulator.
