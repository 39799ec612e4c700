"""Model-based question synthesis (ScaleQuest: QFT + QPO) and back-translation with a Cycle
Verifier, with the filters that decide what is kept. See docs/synthesis.md.

    filters        format, difficulty band, MinHash near-duplicates on skeletons, decontamination
    agreement      solvability by agreement of k sampled solutions (the one solve path)
    chain          the filters in order, with counts; stops when nothing usable is left
    qft            Question Fine-Tuning (questions only) and sampling questions
    qpo            preference pairs over sampled questions, DPO, the two-proportion test
    backtranslate  solution -> question -> solved answer; kept when the cycle closes
"""
