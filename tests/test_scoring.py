from skyqa.service.labels import Label
from skyqa.service.scoring import binary_score, confusion_matrix, score_report

G, B, U, S = Label.GOOD, Label.BT, Label.UNLABELLED, Label.BSEEING


def test_binary_score_positive_is_good() -> None:
    pairs = [(G, G), (G, G), (G, B), (B, B), (S, G), (S, S)]
    score = binary_score(pairs, unlabelled_as_error=False)
    assert (score.tp, score.fn, score.fp, score.tn) == (2, 1, 1, 2)
    assert score.accuracy == 4 / 6 and score.precision == 2 / 3 and score.recall == 2 / 3


def test_unlabelled_ignored_or_counted_wrong() -> None:
    pairs = [(G, U), (B, U), (G, G)]
    assert binary_score(pairs, unlabelled_as_error=False).n == 1
    strict = binary_score(pairs, unlabelled_as_error=True)
    assert strict.n == 3 and strict.fn == 1 and strict.fp == 1 and strict.tp == 1


def test_unlabelled_counted_not_good() -> None:
    """Flagged for a human: a missed Good (fn) when the truth is Good, a correct rejection (tn) otherwise."""
    pairs = [(G, U), (B, U), (G, G)]
    score = binary_score(pairs, unlabelled_as_error=True, unlabelled_not_good=True)
    assert (score.n, score.tp, score.fn, score.tn, score.fp) == (3, 1, 1, 1, 0)
    assert score.precision == 1.0 and score.recall == 0.5 and "not Good" in score_report(pairs)


def test_confusion_matrix_and_report() -> None:
    pairs = [(G, G), (B, U), (B, Label.RBT)]
    matrix = confusion_matrix(pairs)
    assert matrix[B][U] == 1 and matrix[B][Label.RBT] == 1 and matrix[G][G] == 1
    text = score_report(pairs)
    assert "precision" in text and "Unlabelled" in text and "RBT" in text
