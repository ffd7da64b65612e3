"""The song catalog: CATALOG data (non-personal, global), its files copied to every region."""
