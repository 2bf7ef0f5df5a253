"""User feedback and consent, correlated with the outcome the way real signals are: loosely.

Most conversations get no explicit feedback; ratings and thumbs lean towards the true
outcome but are noisy, so some contradict it (a success rated thumbs-down): exactly what a
labeller has to reconcile. Implicit signals (abandonment, escalation) follow the
termination. Consent is independent of everything else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from random import Random

from pipeline.core.record import Consent, Feedback, Outcome

EXPLICIT_RATE = 0.35  # conversations where the user leaves a rating or thumbs
IMPLICIT_THUMBS_RATE = 0.12  # e.g. copied the answer / reopened the chat
CORRECTION_RATE = 0.3  # of failed conversations with explicit feedback
# Rating weights for 5..1 stars.
RATING_WEIGHTS = {True: (50, 30, 10, 6, 4), False: (4, 6, 15, 30, 45)}
THUMBS_UP = {True: 0.85, False: 0.2}


def feedback_for(outcome: Outcome, goal: str, ended_at: datetime, rng: Random) -> list[Feedback]:
    success = bool(outcome.success)

    def at() -> str:
        return (ended_at + timedelta(seconds=rng.uniform(5, 3600))).isoformat()

    signals: list[Feedback] = []
    if outcome.termination == "user_abandoned":
        signals.append(Feedback("abandonment", True, "implicit", at=at()))
    if outcome.termination == "escalated":
        signals.append(Feedback("escalation", True, "implicit", at=at()))
    if rng.random() < EXPLICIT_RATE:
        if rng.random() < 0.6:
            rating = rng.choices((5, 4, 3, 2, 1), RATING_WEIGHTS[success])[0]
            signals.append(Feedback("rating", rating, "human", at=at()))
        else:
            signals.append(Feedback("thumbs", _thumb(rng, success), "human", at=at()))
        if not success and rng.random() < CORRECTION_RATE:
            signals.append(Feedback("correction", None, "human", comment="That is not what I asked for.",
                                    corrected_output=f"The agent should have done this: {goal}", at=at()))
    if rng.random() < IMPLICIT_THUMBS_RATE:
        signals.append(Feedback("thumbs", _thumb(rng, success), "implicit", at=at()))
    return signals


def _thumb(rng: Random, success: bool) -> str:
    return "up" if rng.random() < THUMBS_UP[success] else "down"


def conflicts(outcome: Outcome, feedback: list[Feedback]) -> bool:
    """Whether an explicit or implicit signal contradicts the verified outcome."""
    return any(p is not None and p != bool(outcome.success) for p in map(_polarity, feedback))


def _polarity(f: Feedback) -> bool | None:
    if f.name == "thumbs":
        return f.value == "up"
    if f.name == "rating" and f.value != 3:
        return f.value > 3
    return None


def consent_for(rng: Random) -> Consent:
    r = rng.random()
    if r < 0.85:
        return Consent(may_train=True, scope="training")
    if r < 0.95:
        return Consent(may_train=False)
    return Consent(may_train=False, scope="evaluation_only")
