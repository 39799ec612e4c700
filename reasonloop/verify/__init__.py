"""reasonloop.verify: is this answer right? One versioned verifier for every consumer.

    from reasonloop.verify import grade, grade_batch, extract_answer, VERIFIER_VERSION
    grade("... so the answer is $\\boxed{\\frac{1}{2}}$.", "0.5").status   # 'correct'
"""

from reasonloop.verify.extract import extract_answer
from reasonloop.verify.grade import KINDS, VERIFIER_NAME, VERIFIER_VERSION, grade, grade_batch, verifier_id

__all__ = ["KINDS", "VERIFIER_NAME", "VERIFIER_VERSION", "extract_answer", "grade", "grade_batch", "verifier_id"]
