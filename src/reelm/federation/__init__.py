"""Federation over ActivityPub: public records only, in and out (see docs/federation.md)."""
