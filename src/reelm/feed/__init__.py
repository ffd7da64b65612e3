"""Feeds: For You (per-region learned ranking), Following, hashtag, sound and profile grids, search."""
