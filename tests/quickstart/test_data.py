import numpy as np
import pytest

from flowship.quickstart.data import FEATURES, ID, TARGET, churn_frame


def test_same_seed_same_rows_and_seed_columns():
    a, b = churn_frame(300, seed=5), churn_frame(300, seed=5)
    assert a.equals(b)
    assert not a.equals(churn_frame(300, seed=6))
    assert list(a.columns) == [ID, *FEATURES, TARGET]
    assert a[ID].is_unique and str(a[ID].dtype) == "int64"
    assert set(a[TARGET].unique()) <= {0, 1}
    assert str(a["monetary_total"].dtype) == "float64"


def test_relationships_look_like_churn():
    data = churn_frame(5000, seed=1)
    corr = data[[*FEATURES, TARGET]].corr()[TARGET]
    assert corr["recency_days"] > 0.2  # away longer -> churn more
    assert corr["tenure_months"] < -0.1  # loyal customers stay
    assert corr["frequency"] < -0.1
    assert 0.1 < data[TARGET].mean() < 0.5
    assert (data["age"] >= 18).all() and (data["tenure_months"] >= 1).all()
    assert np.isfinite(data[list(FEATURES)].to_numpy(dtype=float)).all()


def test_rejects_empty():
    with pytest.raises(ValueError):
        churn_frame(0)
