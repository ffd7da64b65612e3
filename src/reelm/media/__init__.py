"""Media for the Create feature: safe probing, named looks, edit specs, transcoding, renditions."""
