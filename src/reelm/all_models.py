"""Imports every domain's models so both metadata objects are complete (migrations, scanner)."""

from reelm.accounts import models as accounts_models
from reelm.audit import models as audit_models
from reelm.residency import models as residency_models
from reelm.staff import models as staff_models

__all__ = ["accounts_models", "audit_models", "residency_models", "staff_models"]
