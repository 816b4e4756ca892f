import flowship


def test_all_is_sorted_and_importable():
    assert flowship.__all__ == sorted(flowship.__all__)
    for name in flowship.__all__:
        assert hasattr(flowship, name), name
