"""Correspondence: per-frame maps between the body mesh and the image (face index, barycentrics,
projected vertices, head box) that the warp and the generator read, their HDF5 cache and the stage that
builds it."""
