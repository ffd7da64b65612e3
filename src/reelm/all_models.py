"""Imports every domain's models so both metadata objects are complete (migrations, scanner)."""

from reelm.accounts import models as accounts_models
from reelm.audit import models as audit_models
from reelm.carveout import models as carveout_models
from reelm.effects import models as effects_models
from reelm.federation import models as federation_models
from reelm.feed import models as feed_models
from reelm.media import models as media_models
from reelm.moderation import models as moderation_models
from reelm.residency import models as residency_models
from reelm.social import models as social_models
from reelm.sounds import models as sounds_models  # noqa: F401
from reelm.staff import models as staff_models

__all__ = [
    "accounts_models",
    "audit_models",
    "carveout_models",
    "effects_models",
    "federation_models",
    "feed_models",
    "media_models",
    "moderation_models",
    "residency_models",
    "social_models",
    "staff_models",
]
