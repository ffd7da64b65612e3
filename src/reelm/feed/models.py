"""Tables of the feed: each user's precomputed For You candidates, in their home region."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from reelm.db import ID, RegionModel, UTCDateTime


class ForYouCandidates(RegionModel):
    """One user's For You candidate set, ranked by the region's worker after a training
    (`feed/precompute.py`; format in `feed/candidates.py`). It is the user's data (it says what
    they like), so it lives in their home region and moves and is deleted with them."""

    __tablename__ = "foryou_candidates"

    owner_id: Mapped[str] = mapped_column(ID, primary_key=True)
    region: Mapped[str] = mapped_column(String(32))  # whose model ranked it
    built_at: Mapped[datetime] = mapped_column(UTCDateTime)
    model_trained_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seed: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
