"""Social: follows, likes, comments, shares, saves, blocks, mutes, watch events, notifications.

Each behaviour record lives in the actor's home region (`owner_id` = the actor); what others see
of it is public: aggregate counts in the PublicCatalog, a comment's published text, and
notifications delivered into the recipient's region through Egress with public fields only.
"""
