"""Search over the archive: similar exposures (histo-vector neighbours), content (DESOM-1 nodes), filtered lists."""
