"""Trust and safety: reports, the moderation queue of each region, notices and appeals."""
